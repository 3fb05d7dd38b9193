"""SharedState on DynamoDB: each named item is one item of a table keyed by
`personId` (the stage's people table by default, whose reserved items
start with `#`, which no person id holds; FACEPRINT_PACE_TABLE names
another for the schedules, shared by the stages of one account and
region, while the breaker and the check stay the stage's). Every change is
one UpdateItem with a condition, so functions running at once never lose
each other's writes:

- reserve: `SET tat = :now + :step` if the schedule is idle (tat < now),
  else `SET tat = tat + :step` if its next turn is not after `latest`.
  DynamoDB adds numbers exactly (decimal), so a schedule never drifts.
- hold_until: `SET tat = :until` if it is earlier.
- update: SET, REMOVE and ADD, conditioned on fields' values."""

from decimal import Decimal

from botocore.exceptions import ClientError

from chalicelib.aws import clients as aws
from chalicelib.aws.dynamodb import _item, _plain
from chalicelib.core.ports import SharedState

KEY = "personId"
PREFIX = "#"
ROUNDS = 4  # a turn's two conditional writes, raced by others: tried again this often


class DynamoSharedState(SharedState):
    def __init__(self, client, table: str, stage: str = "") -> None:
        self._client = client
        self._table = table
        self._stage = stage

    def reserve(self, name: str, now: float, step: float, latest: float) -> tuple[float | None, dict]:
        for _ in range(ROUNDS):
            if now <= latest:
                idle = self._update(
                    name,
                    "SET tat = :end",
                    {":end": now + step, ":now": now},
                    "attribute_not_exists(tat) OR tat < :now",
                )
                if idle is not None:
                    return now, idle
            busy = self._update(
                name,
                "SET tat = tat + :step",
                {":step": step, ":now": now, ":latest": latest},
                "tat >= :now AND tat <= :latest",
            )
            if busy is not None:
                return busy["tat"] - step, busy
            item = self.read(name)
            if (item.get("tat") or now) > latest:
                return None, item
        return None, self.read(name)

    def hold_until(self, name: str, until: float, values: dict | None = None) -> dict:
        sets, removes, names, bound = _assignments(values or {})
        held = self._update(
            name,
            _expression(["tat = :until", *sets], removes),
            {":until": until, **bound},
            "attribute_not_exists(tat) OR tat < :until",
            names,
        )
        if held is not None:
            return held
        return self.update(name, values) if values else self.read(name)

    def read(self, name: str) -> dict:
        with aws.translated(f"DynamoDB table {self._table!r}", self._stage):
            response = self._client.get_item(
                TableName=self._table, Key=_item({KEY: PREFIX + name}), ConsistentRead=True
            )
        return _fields(response.get("Item"))

    def update(
        self, name: str, values: dict | None = None, add: dict | None = None, only_if: dict | None = None
    ) -> dict | None:
        sets, removes, names, bound = _assignments(values or {})
        adds = []
        for i, (field, amount) in enumerate((add or {}).items()):
            names[f"#a{i}"] = field
            bound[f":a{i}"] = amount
            adds.append(f"#a{i} :a{i}")
        conditions = []
        for i, (field, value) in enumerate((only_if or {}).items()):
            names[f"#c{i}"] = field
            if value is None:
                conditions.append(f"attribute_not_exists(#c{i})")
            else:
                bound[f":c{i}"] = value
                conditions.append(f"#c{i} = :c{i}")
        expression = _expression(sets, removes) + (f" ADD {', '.join(adds)}" if adds else "")
        if not expression.strip():
            return self.read(name)
        return self._update(name, expression.strip(), bound, " AND ".join(conditions) or None, names)

    def _update(
        self, name: str, expression: str, values: dict, condition: str | None, names: dict | None = None
    ) -> dict | None:
        request = {
            "TableName": self._table,
            "Key": _item({KEY: PREFIX + name}),
            "UpdateExpression": expression,
            "ReturnValues": "ALL_NEW",
        }
        if values:
            request["ExpressionAttributeValues"] = _item(values)
        if names:
            request["ExpressionAttributeNames"] = names
        if condition:
            request["ConditionExpression"] = condition
        with aws.translated(f"DynamoDB table {self._table!r}", self._stage):
            try:
                response = self._client.update_item(**request)
            except ClientError as e:
                if aws.error_code(e) != "ConditionalCheckFailedException":
                    raise
                return None
        return _fields(response.get("Attributes"))


def _assignments(values: dict) -> tuple[list[str], list[str], dict, dict]:
    sets, removes, names, bound = [], [], {}, {}
    for i, (field, value) in enumerate(values.items()):
        names[f"#v{i}"] = field
        if value is None:
            removes.append(f"#v{i}")
        else:
            bound[f":v{i}"] = value
            sets.append(f"#v{i} = :v{i}")
    return sets, removes, names, bound


def _expression(sets: list[str], removes: list[str]) -> str:
    parts = []
    if sets:
        parts.append("SET " + ", ".join(sets))
    if removes:
        parts.append("REMOVE " + ", ".join(removes))
    return " ".join(parts)


def _fields(item: dict | None) -> dict:
    """The item's fields, without its key; numbers as float (times) or int."""
    fields = _plain(item or {})
    fields.pop(KEY, None)
    return {name: float(value) if isinstance(value, Decimal) else value for name, value in fields.items()}
