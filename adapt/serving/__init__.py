"""Serving adapted policies to robots over openpi's websocket protocol (`adapt serve`)."""
