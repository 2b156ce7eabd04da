"""Pure streaming logic behind the Faust agents: message decoding, incremental windows, alerts.

Nothing here imports Faust or talks to a broker, so it is tested without one."""
