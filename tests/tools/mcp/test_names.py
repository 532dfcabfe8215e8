"""Model-facing MCP tool names: valid for both APIs, the same on every start, never two alike."""
from __future__ import annotations

from tools.mcp.names import VALID, assign_names, base_name


def test_names_join_server_and_tool_and_are_sanitised() -> None:
    assert base_name("github", "search_issues") == "github_search_issues"
    assert base_name("my files", "read.file/v2") == "my_files_read_file_v2"
    assert base_name("ünï", "çödé") == "n_d"  # nothing valid survives but the separator's neighbours
    assert VALID.match(base_name("日本", "ツール"))


def test_long_names_are_cut_to_64_with_a_stable_suffix() -> None:
    name = base_name("s" * 40, "t" * 40)
    assert len(name) == 64 and VALID.match(name)
    assert name == base_name("s" * 40, "t" * 40)
    assert name != base_name("s" * 40, "t" * 39 + "u")


def test_collisions_get_distinct_deterministic_names() -> None:
    pairs = [("my.notes", "echo"), ("my_notes", "echo"), ("a", "b_c"), ("a_b", "c")]
    names = assign_names(pairs, taken={"get_weather"})
    assert len(set(names.values())) == 4 and all(VALID.match(n) for n in names.values())
    assert assign_names(list(reversed(pairs)), taken={"get_weather"}) == names


def test_a_name_taken_by_a_builtin_is_not_reused() -> None:
    names = assign_names([("get", "weather")], taken={"get_weather"})
    assert names[("get", "weather")] != "get_weather" and names[("get", "weather")].startswith("get_weather_")
