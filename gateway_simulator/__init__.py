"""A local simulator of the VNPay, payOS, MoMo and ZaloPay gateways.

It serves each gateway's create/query/refund API and checkout page on loopback,
redirects the browser back signed exactly as the gateway does, and sends the
server-to-server callback to the ingress, signed with the same credentials
and retried on the gateway's own schedule (compressed by ``time_scale``).
A control API scripts faults (duplicate, delay, before_return, drop,
wrong_amount, bad_signature, out_of_order, and for refunds
refund_timeout_after_accept, refund_rejected, refund_duplicate, refund_lost), clicks
checkout buttons, and keeps a ledger of every transaction and its refunds.

    with Simulator(SimConfig(port=0, ingress_base_url="http://127.0.0.1:8080")) as sim:
        sim.pay("momo", order_id)

Run it alone with ``python -m gateway_simulator`` (settings from the environment,
see ``SimConfig.from_env``).
"""

from gateway_simulator.config import (
    DEV_MOMO_ACCESS_KEY,
    DEV_MOMO_PARTNER_CODE,
    DEV_MOMO_SECRET_KEY,
    DEV_PAYOS_API_KEY,
    DEV_PAYOS_CHECKSUM_KEY,
    DEV_PAYOS_CLIENT_ID,
    DEV_VNPAY_HASH_SECRET,
    DEV_VNPAY_TMN_CODE,
    DEV_ZALOPAY_APP_ID,
    DEV_ZALOPAY_KEY1,
    DEV_ZALOPAY_KEY2,
    MomoCredentials,
    PayosCredentials,
    SimConfig,
    VnpayCredentials,
    ZalopayCredentials,
)
from gateway_simulator.server import PayResult, Simulator, service_urls
from gateway_simulator.state import ACTIONS, FAULT_KINDS, GATEWAYS

__all__ = [
    "ACTIONS",
    "DEV_MOMO_ACCESS_KEY",
    "DEV_MOMO_PARTNER_CODE",
    "DEV_MOMO_SECRET_KEY",
    "DEV_PAYOS_API_KEY",
    "DEV_PAYOS_CHECKSUM_KEY",
    "DEV_PAYOS_CLIENT_ID",
    "DEV_VNPAY_HASH_SECRET",
    "DEV_VNPAY_TMN_CODE",
    "DEV_ZALOPAY_APP_ID",
    "DEV_ZALOPAY_KEY1",
    "DEV_ZALOPAY_KEY2",
    "FAULT_KINDS",
    "GATEWAYS",
    "MomoCredentials",
    "PayResult",
    "PayosCredentials",
    "SimConfig",
    "Simulator",
    "VnpayCredentials",
    "ZalopayCredentials",
    "service_urls",
]
