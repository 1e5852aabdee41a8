"""Orders: creation, listing, reading and cancelling, and their state machine."""
