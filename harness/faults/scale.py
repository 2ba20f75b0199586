"""Scale: run a different number of instances of a service while the fault is on."""

from __future__ import annotations

from harness.errors import FaultError, InvalidInput
from harness.faults.base import FaultContext, FaultSpec, JournalData
from harness.platforms.base import Platform
from harness.stack import Stack


class ScaleFault:
    """Scales `service` to `attributes.count` instances; removal scales it back."""

    name = "scale"

    def check(self, spec: FaultSpec, stack: Stack, where: str) -> None:
        """Raise InvalidInput unless an api-like service and a count from 1 to 10 are given."""
        if not stack.scalable(spec.service or ""):
            scalable = ", ".join(n for n in stack.services if stack.scalable(n))
            raise InvalidInput(f"{where}.service: {spec.service!r} does not scale; services "
                               f"behind the edge do: {scalable}")  # fmt: skip
        count = spec.attributes.get("count")
        if count is None or isinstance(count, bool) or not 1 <= count <= 10 or count != int(count):
            raise InvalidInput(f"{where}.attributes.count: invalid value {count!r}; expected a "
                               "whole number from 1 to 10")  # fmt: skip

    def services(self, spec: FaultSpec) -> list[str]:
        """Return the scaled service."""
        return [spec.service or ""]

    def describe(self, spec: FaultSpec) -> str:
        """Return the service and the count."""
        return f"{spec.service} x{int(spec.attributes.get('count', 0))}"

    def prepare(self, spec: FaultSpec, context: FaultContext) -> JournalData:
        """Record the count to scale back to."""
        assert spec.service is not None
        before = len(context.platform.instances(spec.service))
        if before == 0:
            raise FaultError(f"service {spec.service} is not running")
        self._platform = context.platform
        return {"kind": self.name, "service": spec.service, "before": before,
                "count": int(spec.attributes["count"])}  # fmt: skip

    def apply(self, spec: FaultSpec, data: JournalData) -> None:
        """Scale to the new count."""
        self._platform.scale(str(data["service"]), int(str(data["count"])))

    def took_effect(self, spec: FaultSpec, data: JournalData) -> bool:
        """Check that the service runs the new count."""
        return len(self._platform.instances(str(data["service"]))) == int(str(data["count"]))

    def holder_gone(self, data: JournalData) -> bool:
        """Return True: only the running arm's platform can scale back.

        A later reconcile therefore has nothing to undo.
        """
        return True

    def remove(self, data: JournalData, platform: Platform | None = None) -> None:
        """Scale back; without a platform (a later reconcile) the target is stopped anyway."""
        if platform is not None:
            platform.scale(str(data["service"]), int(str(data["before"])))
