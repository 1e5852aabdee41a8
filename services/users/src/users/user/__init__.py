"""User accounts: the caller's profile and the admin listing."""
