"""Watching a run: `progress` (percent and ETA), `live_nodes` (nodes that run long), `callbacks`
(progress callbacks off the compute thread), `terminal` (the tqdm bar), `metrics` (Prometheus),
`slack_progress` (progress messages to Slack)."""
