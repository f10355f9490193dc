"""Apache Airflow provider for Anthropic Managed Agents deployments.

Kept import-free on purpose: DAG files import the operator and sensor modules, and every
module-level import here would be paid on each DAG parse.
"""

__version__ = "0.1.0"
