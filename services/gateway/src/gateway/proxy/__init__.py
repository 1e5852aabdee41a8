"""The streaming reverse proxy to users and orders, and the declarations of what it serves."""
