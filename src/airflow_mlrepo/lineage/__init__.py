"""OpenLineage for lakeFS: dataset naming, custom facets, operator lineage, the Marquez exact-version
registration and the durable outbox transport.

Kept free of heavy imports: ``python -m airflow_mlrepo.lineage.outbox`` (the background deliverer)
imports this package.
"""

from __future__ import annotations
