"""Fulfilment: the ``orders.fulfil`` job charges the order and reports the outcome to orders."""
