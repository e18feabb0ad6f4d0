"""The web side: the dashboard (`gymforge web`) and the daemons' /metrics, /healthz and /readyz."""
