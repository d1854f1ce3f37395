"""Order service: catalog, orders, stock and "Pay again". Rooms as in the
payment service: domain/ (pure rules and values), service_layer/ (use cases,
one unit of work each; no protobuf), adapters/ (SQL, ORM, the demo catalog,
the payment.v1 client), entrypoints/ (order.v1 <-> domain, the process)."""
