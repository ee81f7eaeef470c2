"""Assembly: the registries wired to the config, and specs turned into probers and notifiers.

The config package is a leaf: it validates a file against whatever spec models it is handed.
This layer hands it the real ones, from the prober registry (probe.probers: sections and
`client` drivers) and the notifier registry (probe.notify: kinds and their aliases), with the
EaseProbe names each registry refuses, and builds one prober or notifier per validated spec.
A kind's module is imported only when a file uses that kind.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from probe import config
from probe.config import Config, NotifierSpecFactory, SpecFactory
from probe.config.models import NotifierSpec, ProbeSpec
from probe.errors import ProbeError
from probe.notify import ALIASES, NOTIFIERS, UNSUPPORTED_NOTIFIERS, load_notifier_class
from probe.probers import (
    CLIENT_DRIVERS,
    SECTIONS,
    UNSUPPORTED_DRIVERS,
    UNSUPPORTED_SECTIONS,
    load_prober_class,
    target_for_kind,
)

if TYPE_CHECKING:
    # Imported by whoever builds probers or notifiers anyway; `probe check`'s load need not.
    from probe.notify.base import Notifier, NotifyContext
    from probe.probers.base import Prober, SharedResources

__all__ = [
    "build_notifiers",
    "build_probers",
    "load_config",
    "notifier_spec_factories",
    "prober_spec_factories",
]


def prober_spec_factories(targets: Mapping[str, str]) -> dict[str, SpecFactory]:
    """A spec factory per name of `targets` (SECTIONS or CLIENT_DRIVERS: name -> "module:Class")."""

    def factory(target: str) -> SpecFactory:
        return lambda: load_prober_class(target).spec_type

    return {name: factory(target) for name, target in targets.items()}


def notifier_spec_factories() -> dict[str, NotifierSpecFactory]:
    """A spec factory per notifier kind, and per alias (`webhook`) of one."""

    def factory(kind: str) -> NotifierSpecFactory:
        return lambda: load_notifier_class(kind).spec_type

    return {kind: factory(kind) for kind in (*NOTIFIERS, *ALIASES)}


def load_config(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> Config:
    """Load and validate `path` with every prober and notifier kind there is (probe.config's
    `load_config` with the real registries); raise `ConfigError` listing every problem.
    `path` may be a folder of config files (`-c DIR`), loaded as one config.
    `environ` is what `${VAR}` reads (default: `os.environ`)."""
    return config.load_config(
        path,
        sections=prober_spec_factories(SECTIONS),
        drivers=prober_spec_factories(CLIENT_DRIVERS),
        notifiers=notifier_spec_factories(),
        unsupported_sections=UNSUPPORTED_SECTIONS,
        unsupported_drivers=UNSUPPORTED_DRIVERS,
        unsupported_notifiers=UNSUPPORTED_NOTIFIERS,
        environ=environ,
        # A path that is no folder (or cannot be looked at) is read as a file, which says why.
        folder=os.path.isdir(path),
    )


def build_probers(specs: Sequence[ProbeSpec], resources: SharedResources) -> list[Prober[Any]]:
    """One prober per spec; driver modules are imported only for kinds in use."""
    probers: list[Prober[Any]] = []
    for spec in specs:
        cls = load_prober_class(target_for_kind(spec.kind))
        prober = cls(spec, resources)
        # A failure here (a TLS file that cannot be loaded) is reported by the checks.
        with contextlib.suppress(ProbeError):
            prober.prepare()
        probers.append(prober)
    return probers


def build_notifiers(specs: Sequence[NotifierSpec], context: NotifyContext) -> list[Notifier[Any]]:
    """One notifier per spec; service modules (apprise, aiomqtt) are imported only when used."""
    return [load_notifier_class(spec.kind)(spec, context) for spec in specs]
