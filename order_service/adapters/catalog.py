"""A small demo catalog that `payments dev` puts in an empty order database."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.dialects.postgresql import insert

from order_service.adapters.orm import products

DEMO_PRODUCTS = [
    {
        "variant_id": "tshirt-black-m",
        "name": "T-shirt, black, M",
        "price": 150_000,
        "currency": "VND",
        "stock": 100,
    },
    {
        "variant_id": "tshirt-white-l",
        "name": "T-shirt, white, L",
        "price": 150_000,
        "currency": "VND",
        "stock": 100,
    },
    {"variant_id": "mug-blue", "name": "Mug, blue", "price": 89_000, "currency": "VND", "stock": 50},
    {"variant_id": "sticker-pack", "name": "Sticker pack", "price": 25_000, "currency": "VND", "stock": 500},
]


def seed(engine: Engine) -> None:
    """Adds the demo products that are missing; never touches existing stock."""
    with engine.begin() as conn:
        conn.execute(insert(products).values(DEMO_PRODUCTS).on_conflict_do_nothing())
