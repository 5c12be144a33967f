"""The worker-side server in front of vLLM.

Key bundles, sealed chat, cancel and receipt fetches and health on the public listener;
metrics on their own.
"""
