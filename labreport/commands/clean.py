"""`labreport clean`: what labreport left behind on this host (inventory/leftovers.py finds it),
listed with what is kept on purpose (--check), or removed; --all also removes what is kept."""

from __future__ import annotations

from labreport.commands.common import host_endpoints
from labreport.errors import LabreportError, LeftoversError
from labreport.host import paths
from labreport.inventory import leftovers
from labreport.inventory.leftovers import Item


def audit() -> list[Item]:
    """Everything of labreport's on this host, kept or left behind; nothing is changed."""
    return leftovers.find((*leftovers.every_probe(host_endpoints()), leftovers.state_directory))


def require_nothing_left(found: list[Item]) -> None:
    """--check: anything left behind (not kept on purpose) is an error (exit 1)."""
    leaks = [item for item in found if not item.kept]
    if leaks:
        raise LeftoversError(
            f"{len(leaks)} thing(s) left behind: {', '.join(i.kind for i in leaks)}",
            "see the lines above; 'labreport clean' removes them",
        )


def run(everything: bool) -> list[Item]:
    """Remove what was left behind (everything: what is kept too); what was removed. --all
    removes the state directory only when it is provably labreport's (paths.owns_state_dir)."""
    state = paths.state_dir()
    if everything and state.is_dir() and not paths.owns_state_dir(state):
        raise LabreportError(
            f"LABREPORT_STATE_DIR names {state}, which labreport did not make "
            f"(no {paths.STATE_MARKER} in it): not removed",
            "unset LABREPORT_STATE_DIR, or point it at labreport's own state directory",
        )
    return leftovers.clean(host_endpoints(), everything)
