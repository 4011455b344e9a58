"""Example airflow-mlrepo containers: an H2O GBM exported as a POJO and scored through Java.

Training runs H2O-3 in a local JVM (``h2o.init``) and exports the model as a POJO: plain Java
source plus the ``h2o-genmodel.jar`` it compiles against. Inference compiles that source with
``javac`` together with :file:`ScorePojo.java` (shipped in this package) and scores with ``java``:
no H2O server and no H2O Python package. No Airflow inside.
"""

from __future__ import annotations
