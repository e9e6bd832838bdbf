"""Every `LEADFLOW_*` variable the settings classes read, with its default and meaning.

Enumerated from the pydantic-settings classes themselves, so the list cannot drift from the code:
a field's variable is its `validation_alias` when it has one, else the class's `env_prefix` plus the
field name; a field whose type is itself a settings class (`Topics`) is read with that class's prefix.
`leadflow config` prints it; README's configuration table is its markdown form, checked by a test.
"""

from dataclasses import dataclass
from typing import Any

from pydantic import AliasChoices
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from shared.config import LeadflowSettings

# Meanings of fields that carry no `description`, by field path; `{service}` is the class's service.
NOTES: dict[str, str] = {
    "kafka_bootstrap": "`host:port[,host:port]` of the Kafka brokers.",
    "topic_partitions": "Partitions of each topic `leadflow topics` creates: the most replicas a consumer group uses.",
    "log_level": "Level of the JSON log lines on stderr.",
    "retry_after_s": "The `Retry-After` of the 503s answered while the broker is unreachable.",
    "topics.touches": "Topic name of touches (ingest → scoring, routing, reporting); every service must agree.",
    "topics.deals": "Topic name of deals (ingest → scoring, reporting); every service must agree.",
    "topics.leads": "Topic name of lead events (scoring → routing, reporting); every service must agree.",
    "topics.assignments": "Topic name of assignment events (routing → scoring, reporting); every service must agree.",
    "topics.dead_letters": "Topic name of records a consumer could not apply; every service must agree.",
    "host": "Address {service} listens on (`0.0.0.0` in containers).",
    "port": "Port {service} listens on.",
    "consumer_group": "Kafka consumer group of {service}; its replicas share the partitions.",
    "counts_flush_s": "How often ingest writes its per-source counters to the database.",
    "default_rate_limit_per_s": "Events/s per source when the source sets no limit (per replica).",
    "webhook_timeout_s": "Timeout of one CRM webhook delivery attempt.",
    "webhook_max_retry_s": "Longest wait between two delivery attempts (the doubling stops there).",
}


@dataclass(frozen=True)
class Variable:
    name: str
    default: str
    meaning: str
    used_by: tuple[str, ...]


@dataclass(frozen=True)
class Read:
    name: str
    path: str
    default: str
    description: str | None
    fallback: str | None = None  # also read, when the variable is unset (an alias with populate_by_name)


def service_settings() -> dict[str, type[LeadflowSettings]]:
    """Each service's settings class; the CLI's `migrate` and `topics` read the common base alone."""
    from services.ingest.config import IngestSettings
    from services.reporting.config import ReportingSettings
    from services.routing.config import RoutingSettings
    from services.scoring.config import ScoringSettings

    return {
        "ingest": IngestSettings,
        "scoring": ScoringSettings,
        "routing": RoutingSettings,
        "reporting": ReportingSettings,
    }


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default is PydanticUndefined:
        return ""
    if isinstance(field.default, bool | int | float | str):
        return str(field.default)
    return repr(field.default)


def reads(cls: type[BaseSettings], path: str = "") -> list[Read]:
    """The variable of each field of `cls`, with the field's dotted path."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    found: list[Read] = []
    for field_name, field in cls.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseSettings):
            found += reads(annotation, f"{path}{field_name}.")
            continue
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):  # the first choice is the name to document
            alias = alias.choices[0]
        plain = f"{prefix}{field_name}".upper()
        name = alias.upper() if isinstance(alias, str) else plain
        fallback = plain if name != plain and cls.model_config.get("populate_by_name") else None
        found.append(Read(name, f"{path}{field_name}", _default(field), field.description, fallback))
    return found


def _meaning(read: Read, service: str) -> str:
    return read.description or NOTES.get(read.path, "").format(service=service)


def reference() -> list[Variable]:
    """Every variable of every service, in class order; one entry per variable, naming the services reading it."""
    entries: dict[str, dict[str, Any]] = {}
    base = {read.name for read in reads(LeadflowSettings)}
    classes = service_settings()
    for service, cls in classes.items():
        for read in reads(cls):
            entry = entries.setdefault(read.name, {"defaults": {}, "meanings": {}, "services": []})
            entry["defaults"][service] = read.default
            entry["meanings"][service] = _meaning(read, service)
            entry["services"].append(service)
    variables = []
    for name, entry in entries.items():
        defaults, meanings = set(entry["defaults"].values()), set(entry["meanings"].values())
        variables.append(
            Variable(
                name=name,
                default=defaults.pop() if len(defaults) == 1 else _per_service(entry["defaults"]),
                meaning=meanings.pop() if len(meanings) == 1 else _per_service(entry["meanings"]),
                used_by=("all",)
                if name in base or len(entry["services"]) == len(classes)
                else tuple(entry["services"]),
            )
        )
    return variables


def fallbacks() -> dict[str, list[str]]:
    """Unprefixed names pydantic-settings also reads for aliased fields (`LEADFLOW_PORT` for every port):
    never set them, they reach every service at once."""
    found: dict[str, list[str]] = {}
    for cls in service_settings().values():
        for read in reads(cls):
            if read.fallback and read.name not in found.setdefault(read.fallback, []):
                found[read.fallback].append(read.name)
    return found


def _per_service(values: dict[str, str]) -> str:
    return " ".join(f"*{service}*: {value}" for service, value in values.items())


def as_markdown(variables: list[Variable]) -> str:
    lines = ["| variable | default | used by | meaning |", "|---|---|---|---|"]
    for v in variables:
        default = f"`{v.default}`" if v.default and v.default != "required" else v.default
        meaning = v.meaning.replace("|", "\\|")
        lines.append(f"| `{v.name}` | {default} | {', '.join(v.used_by)} | {meaning} |")
    return "\n".join(lines)


def as_text(variables: list[Variable]) -> str:
    width = max(len(v.name) for v in variables)
    default_width = min(max(len(v.default) for v in variables), 40)
    return "\n".join(
        f"{v.name:<{width}}  {v.default:<{default_width}}  {','.join(v.used_by):<10}  {v.meaning}" for v in variables
    )
