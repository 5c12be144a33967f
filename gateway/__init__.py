"""The worker-side server in front of vLLM: key bundles, sealed chat, health and metrics."""
