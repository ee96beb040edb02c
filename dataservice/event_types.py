"""Every event type the service records, `<entity>.<action>`: each resource declares its own
(through store/events.py, as its store module loads); the outbox checks against them and the
feed's schema offers them as its `types` filter. Here, below both, so that schemas need not
import the store."""

TYPES: list[str] = []  # every declared event type, in declaration order


def declare(entity: str, *actions: str) -> tuple[str, ...]:
    """Declares a resource's event types; returns them."""
    types = tuple(f"{entity}.{action}" for action in actions)
    TYPES.extend(t for t in types if t not in TYPES)
    return types
