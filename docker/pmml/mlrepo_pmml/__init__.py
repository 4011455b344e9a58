"""Example airflow-mlrepo containers: a scikit-learn pipeline exported to PMML and scored from the PMML.

Training exports with ``sklearn2pmml`` (JPMML-SkLearn, Java); inference evaluates the XML with
``jpmml_evaluator`` (JPMML-Evaluator in the JVM through JPype), so the predict container needs no
scikit-learn model at all: the PMML document is the model. No Airflow inside.
"""

from __future__ import annotations
