"""Operating the gateway: metrics, structured logs, graceful shutdown, cluster sync."""
