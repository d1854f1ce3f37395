"""Order service: orders, stock and "Pay again"; built in a later issue."""
