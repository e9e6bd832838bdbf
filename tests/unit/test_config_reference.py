"""The configuration reference is enumerated from the settings classes and is what README documents."""

import re
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings, EnvSettingsSource

from shared import settings_reference as ref
from shared.cli import main

ROOT = Path(__file__).resolve().parents[2]
README_ROW = re.compile(r"^\| `(LEADFLOW_[A-Z0-9_]+)` \| ([^|]*) \|", re.MULTILINE)


def readme_table() -> dict[str, str]:
    """Variable -> default cell of README's configuration table (its Production section)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("\n## Production") :]
    section = section[: section.find("\n## ", 1)]
    return {name: default.strip().strip("`") for name, default in README_ROW.findall(section)}


def field_class(cls: type[BaseSettings], path: str) -> tuple[type[BaseSettings], str]:
    *parents, name = path.split(".")
    for parent in parents:
        annotation = cls.model_fields[parent].annotation
        assert isinstance(annotation, type)
        assert issubclass(annotation, BaseSettings)
        cls = annotation
    return cls, name


@pytest.mark.parametrize("service", list(ref.service_settings()))
def test_each_listed_variable_is_the_one_pydantic_settings_reads(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ref.service_settings()[service]
    found = ref.reads(settings)
    assert len({read.path for read in found}) == len(found)
    for read in found:
        cls, name = field_class(settings, read.path)
        monkeypatch.setenv(read.name, "probe-value")
        values = EnvSettingsSource(cls)()
        monkeypatch.delenv(read.name)
        alias = cls.model_fields[name].validation_alias
        assert values.get(name, values.get(alias if isinstance(alias, str) else "")) == "probe-value", read


def test_a_misspelt_variable_reads_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.scoring.config import ScoringSettings

    monkeypatch.setenv("LEADFLOW_SCORINGHOST", "probe-value")
    assert "probe-value" not in EnvSettingsSource(ScoringSettings)().values()
    assert "LEADFLOW_SCORINGHOST" not in {v.name for v in ref.reference()}


def test_unprefixed_fallbacks_are_listed_because_pydantic_settings_reads_them(monkeypatch: pytest.MonkeyPatch) -> None:
    listed = ref.fallbacks()
    assert "LEADFLOW_INGEST_PORT" in listed["LEADFLOW_PORT"]
    assert "LEADFLOW_SCORING_PORT" in listed["LEADFLOW_PORT"]
    for cls in ref.service_settings().values():
        for read in ref.reads(cls):
            if read.fallback:
                monkeypatch.setenv(read.fallback, "probe-value")
                assert EnvSettingsSource(cls)().get(read.path) == "probe-value", read
                monkeypatch.delenv(read.fallback)
    readme = (ROOT / "README.md").read_text()
    assert [name for name in listed if f"`{name}`" not in readme] == []


def test_nested_topics_are_read_with_their_own_prefix() -> None:
    names = {v.name for v in ref.reference()}
    assert {"LEADFLOW_TOPIC_TOUCHES", "LEADFLOW_TOPIC_DEAD_LETTERS", "LEADFLOW_TOPIC_PARTITIONS"} <= names
    assert "LEADFLOW_TOPICS" not in names


def test_every_variable_has_a_meaning_and_every_note_a_field() -> None:
    assert [v.name for v in ref.reference() if not v.meaning.strip()] == []
    paths = {read.path for cls in ref.service_settings().values() for read in ref.reads(cls)}
    assert set(ref.NOTES) - paths == set()


def test_variables_shared_by_services_name_them() -> None:
    by_name = {v.name: v for v in ref.reference()}
    assert by_name["LEADFLOW_DATABASE_URL"].used_by == ("all",)
    assert by_name["LEADFLOW_SCORING_MAX_BATCH"].used_by == ("scoring",)
    assert by_name["LEADFLOW_ADMIN_TOKEN"].default == "required"
    assert by_name["LEADFLOW_SCORING_PORT"].default == "8002"


def test_readme_documents_every_variable_with_its_default() -> None:
    documented = readme_table()
    variables = {v.name: v.default for v in ref.reference()}
    assert sorted(set(variables) - set(documented)) == [], "run `leadflow config --markdown` and update README"
    assert sorted(set(documented) - set(variables)) == [], "README documents variables nothing reads"
    assert {k: documented[k] for k in variables} == variables


def test_leadflow_config_prints_every_variable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [v.name for v in ref.reference()]
    assert main(["config", "--markdown"]) == 0
    assert capsys.readouterr().out.strip() == ref.as_markdown(ref.reference())
