"""What a person runs outside a graph: the `zdg` face commands, the service layer they share with the UI
and the Python client (`nodes/app/service.py`), enrolment, search, forgetting, reports and the web UI."""
