"""Per-endpoint parameter specs: what each sandbox endpoint models, converted for its handler.

Every request has already passed `sandbox.domain.validation` (stripe-python's generated types:
names, enums, value types, required keys) before its handler runs these specs, so a
refusal here is either a narrower rule Stripe documents (lengths, ranges) or a parameter
Stripe accepts that the sandbox does not model, which the message says. An empty string
means "unset" (None), as in Stripe's form encoding.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sandbox.domain.errors import bad_param, invalid


def _join(param: str, key: str | int) -> str:
    return f"{param}[{key}]" if param else str(key)


class Spec:
    """Checks and converts one decoded form value."""

    def check(self, value: Any, param: str) -> Any:
        raise NotImplementedError


class Str(Spec):
    def __init__(self, max_length: int = 5000) -> None:
        self.max_length = max_length

    def check(self, value: Any, param: str) -> Any:
        if not isinstance(value, str):
            raise bad_param(f"Invalid string: {param}", param)
        if value == "":
            return None
        if len(value) > self.max_length:
            raise bad_param(
                f"Invalid string: {value[:20]}...; must be at most {self.max_length} characters",
                param,
            )
        return value


class Int(Spec):
    def __init__(self, minimum: int | None = None, maximum: int | None = None) -> None:
        self.minimum = minimum
        self.maximum = maximum

    def check(self, value: Any, param: str) -> Any:
        if value == "":
            return None
        if not isinstance(value, str):
            raise bad_param(f"Invalid integer: {param}", param)
        try:
            number = int(value)
        except ValueError:
            raise invalid(
                f"Invalid integer: {value}",
                param,
                code="parameter_invalid_integer",
                validation=True,
            ) from None
        if self.minimum is not None and number < self.minimum:
            raise bad_param(f"This value must be greater than or equal to {self.minimum}.", param)
        if self.maximum is not None and number > self.maximum:
            raise bad_param(f"This value must be less than or equal to {self.maximum}.", param)
        return number


class Bool(Spec):
    def check(self, value: Any, param: str) -> Any:
        if value == "":
            return None
        if value in ("true", "false"):
            return value == "true"
        raise bad_param(f"Invalid boolean: {value}", param)


class Enum(Spec):
    def __init__(self, *values: str) -> None:
        self.values = values

    def check(self, value: Any, param: str) -> Any:
        if value == "":
            return None
        if value not in self.values:
            leaf = param.rsplit("[", 1)[-1].rstrip("]")
            choices = ", ".join(self.values[:-1]) + f", or {self.values[-1]}"
            if len(self.values) == 1:
                choices = self.values[0]
            raise bad_param(f"Invalid {leaf}: must be one of {choices}", param)
        return value


class Metadata(Spec):
    """`metadata[k]=v`; an empty value deletes the key, `metadata=""` clears all."""

    def check(self, value: Any, param: str) -> Any:
        if value == "":
            return {}
        if not isinstance(value, dict):
            raise bad_param("Invalid object", param)
        for key, item in value.items():
            if not isinstance(item, str):
                raise bad_param(f"Invalid string: {_join(param, key)}", _join(param, key))
            if len(key) > 40:
                raise bad_param("Metadata keys can have up to 40 characters.", _join(param, key))
            if len(item) > 500:
                raise bad_param("Metadata values can have up to 500 characters.", _join(param, key))
        if len(value) > 50:
            raise bad_param("Metadata can have up to 50 keys.", param)
        return dict(value)


class Free(Spec):
    """Accepted as sent (for parameters the sandbox stores but does not interpret)."""

    def check(self, value: Any, param: str) -> Any:
        return None if value == "" else value


class ListOf(Spec):
    def __init__(self, item: Spec) -> None:
        self.item = item

    def check(self, value: Any, param: str) -> Any:
        if value == "":
            return []
        if isinstance(value, str):
            raise bad_param(f"Invalid array: {param}", param)
        if isinstance(value, dict):
            raise bad_param(f"Invalid array: {param}", param)
        return [self.item.check(v, _join(param, i)) for i, v in enumerate(value)]


class Hash(Spec):
    """A nested object with known keys."""

    def __init__(self, fields: Mapping[str, Spec], required: Iterable[str] = ()) -> None:
        self.fields = dict(fields)
        self.required = tuple(required)

    def check(self, value: Any, param: str) -> Any:
        if value == "":
            return None
        if not isinstance(value, dict):
            raise bad_param(f"Invalid object: {param}" if param else "Invalid object", param)
        out: dict[str, Any] = {}
        for key, item in value.items():
            spec = self.fields.get(key)
            if spec is None:
                name = _join(param, key)
                raise invalid(
                    f"Received unknown parameter: {name} (Stripe's API accepts it; the "
                    "sandbox does not model it)",
                    name,
                    code="parameter_unknown",
                    validation=True,
                )
            out[key] = spec.check(item, _join(param, key))
        for key in self.required:
            if out.get(key) is None:
                name = _join(param, key)
                raise invalid(
                    f"Missing required param: {name}.",
                    name,
                    code="parameter_missing",
                    validation=True,
                )
        return out


LIST_PARAMS: dict[str, Spec] = {
    "limit": Int(),
    "starting_after": Str(),
    "ending_before": Str(),
}

TIMESTAMP_RANGE = Hash({"gt": Int(), "gte": Int(), "lt": Int(), "lte": Int()})


class Created(Spec):
    """`created=ts` or `created[gte]=ts` etc."""

    def check(self, value: Any, param: str) -> Any:
        if isinstance(value, str):
            return {"eq": Int().check(value, param)}
        return TIMESTAMP_RANGE.check(value, param)


def validate(
    params: Mapping[str, Any],
    fields: Mapping[str, Spec],
    required: Iterable[str] = (),
    *,
    listing: bool = False,
) -> dict[str, Any]:
    """Validated, converted top-level params; `expand` is accepted everywhere."""
    spec_fields = dict(fields)
    spec_fields["expand"] = ListOf(Str())
    if listing:
        spec_fields.update(LIST_PARAMS)
    result: dict[str, Any] = Hash(spec_fields, required).check(dict(params), "")
    if listing:
        limit = result.get("limit")
        if limit is not None and not 1 <= limit <= 100:
            raise bad_param("Invalid limit: must be between 1 and 100", "limit")
    return result


def apply_metadata(current: dict[str, str], update: dict[str, str] | None) -> dict[str, str]:
    """Stripe's metadata merge: set keys, delete keys sent empty, `{}` clears all."""
    if update is None:
        return current
    if not update:
        return {}
    merged = dict(current)
    for key, value in update.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged
