"""The event catalogue of the reference: which event types exist and which order kind may emit which.

Single source of the lifecycle rules; the generator must never emit an event its order kind
does not allow here, and the contract tests check it against this table.

The reference's table "Events by type of order" lost its column alignment in the published text:
rows with one `X` do not say which column. We read them as a telecom engineer would (documented in
docs/api-contract.md): appointments, saturation and requalification need a line to be built, so they belong
to `Activate Create`; sensitive access and delay confirmations concern taking over a line that is
already active, so they belong to `Activate Activate`. Rows with two `X` are the two activations.
"""

from __future__ import annotations

ACTIVATE_CREATE = "Activate Create"
ACTIVATE_ACTIVATE = "Activate Activate"
TERMINATE = "Terminate"
FIBER_PRO = "Fiber Pro"
ORDER_KINDS: tuple[str, ...] = (ACTIVATE_CREATE, ACTIVATE_ACTIVATE, TERMINATE, FIBER_PRO)

# The reference does not give the `type` string of an intervention-report event; it only names it
# "CRI". Consumers should recognise it by its payload (file labels mapped to URLs) as well.
CRI_EVENT_TYPE = "order-cri"

_ALL_ORDERS = {
    "order-submitted",
    "order-dropped",
    "order-acknowledged",
    "order-running",
    "order-rejected",
    "order-completed",
}
_BOTH_ACTIVATIONS = {"order-information-from-provider", "order-cancelled", "order-info"}

ALLOWED_EVENTS: dict[str, frozenset[str]] = {
    ACTIVATE_CREATE: frozenset(
        _ALL_ORDERS
        | _BOTH_ACTIVATIONS
        | {
            "order-localloop-saturation",
            "order-localloop-desaturation-planned",
            "order-network-saturation",
            "order-network-desaturation-planned",
            "order-requalified",
            "order-appointment-confirmed",
            "order-appointment-declined",
            "order-appointment-missed",
            "order-appointment-agreed",
        }
    ),
    ACTIVATE_ACTIVATE: frozenset(
        _ALL_ORDERS
        | _BOTH_ACTIVATIONS
        | {
            "order-sensibleaccess",
            "order-sensibleaccess-orderconfirmed",
            "order-delayed",
            "order-delayed-orderconfirmed",
        }
    ),
    TERMINATE: frozenset(_ALL_ORDERS),
    FIBER_PRO: frozenset(
        {
            "order-submitted",
            "order-acknowledged",
            "order-running",
            "order-rejected",
            "order-cancelled",
            "order-appointment-agreed",
            "order-info",
            "order-completed",
            "order-on-site-intervention-succeeded",
            "order-on-site-intervention-failed",
            "order-appointment-missed",
            "order-appointment-deferred",
            CRI_EVENT_TYPE,
        }
    ),
}

SERVICE_EVENTS: frozenset[str] = frozenset(
    {
        "service-activated",
        "service-terminated",
        "service-modified",
        "service-slammed",
        "service-updated",
        "service-info",
    }
)

# Every order event the reference names anywhere (list, details, Fiber Pro list).
DOCUMENTED_ORDER_EVENTS: frozenset[str] = frozenset().union(*ALLOWED_EVENTS.values()) | {
    "order-localloop-desaturation-quote-emitted",
    "order-localloop-desaturation-quote-accepted",
}
DOCUMENTED_EVENTS: frozenset[str] = DOCUMENTED_ORDER_EVENTS | SERVICE_EVENTS

# Types the emulator emits now and then although the reference does not list them: a consumer
# must keep them, not drop them.
UNDOCUMENTED_EVENTS: tuple[str, ...] = ("order-priority-changed", "service-suspended")

REJECT_REASONS: tuple[tuple[str, str, str, str | None, float], ...] = (
    # (reject_reason, reject_code, reject_subcode, reject_description, weight)
    ("ar_ko", "CDE_ANNUL", "CLI003", None, 5.0),
    ("ar_ko", "CDE_ANNUL", "CLI001", "Client injoignable", 3.0),
    ("cr_ko", "ADR_INCONNUE", "ADR002", "Adresse introuvable au referentiel", 4.0),
    ("cr_ko", "PTO_INEXISTANT", "PTO001", "Prise terminale optique inexistante", 3.0),
    ("cr_ko", "RACCO_IMPOSSIBLE", "INF004", "Infrastructure de genie civil bloquee", 2.0),
    ("cr_ko", "ROUTE_OPTIQUE", "ROP007", None, 1.5),
    ("ar_ko", "DOUBLON", "CMD009", "Commande en doublon", 1.0),
)

CANCEL_REASONS: tuple[str, ...] = (
    "sensible access",
    "customer request",
    "duplicate order",
    "customer moved",
)

PROVIDER_INFO: tuple[tuple[str, str], ...] = (
    ("The order is awaiting the activation status report (OK or NOK)", "Activation Status Report"),
    ("Waiting for the building manager's authorisation", "Access Authorisation"),
    ("Civil works required on the last drop", "Civil Works"),
)
