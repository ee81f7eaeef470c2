"""The graph of `depends_on`: dependencies and dependents (transitive, nearest first), the root
cause of a failure, cycles."""

from __future__ import annotations

from probe.dependency_graph import DependencyGraph

# router <- db <- api <- web;  router <- cache;  api also needs cache
GRAPH = DependencyGraph(
    {
        "router": [],
        "db": ["router"],
        "cache": ["router"],
        "api": ["db", "cache"],
        "web": ["api"],
        "lonely": [],
    }
)


def test_dependencies_and_dependents_nearest_first():
    assert GRAPH.dependencies("api") == ("db", "cache")
    assert GRAPH.all_dependencies("web") == ["api", "db", "cache", "router"]
    assert GRAPH.all_dependents("router") == ["db", "cache", "api", "web"]
    assert GRAPH.all_dependents("lonely") == []
    assert GRAPH.all_dependencies("unknown") == []
    assert GRAPH
    assert not DependencyGraph({"a": [], "b": []})


def test_root_cause_is_the_down_dependency_nothing_else_explains():
    down = {"router", "db", "api"}
    assert GRAPH.root_cause("web", down.__contains__) == "router"
    assert GRAPH.root_cause("api", {"db"}.__contains__) == "db"
    assert GRAPH.root_cause("web", {"cache", "db"}.__contains__) == "db"  # nearest of two
    assert GRAPH.root_cause("web", set().__contains__) is None
    assert GRAPH.root_cause("router", {"db"}.__contains__) is None  # dependents do not count


def test_unknown_names_and_self_references_are_left_out():
    graph = DependencyGraph({"a": ["a", "ghost", "b", "b"], "b": []})
    assert graph.dependencies("a") == ("b",)
    assert graph.find_cycle() is None


def test_cycles_are_found_with_their_path():
    assert GRAPH.find_cycle() is None
    cycle = DependencyGraph({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}).find_cycle()
    assert cycle is not None
    assert cycle[0] == cycle[-1]
    assert set(cycle) == {"a", "b", "c"}
    assert DependencyGraph({"x": ["y"], "y": ["x"]}).find_cycle() in (
        ["x", "y", "x"],
        ["y", "x", "y"],
    )


def test_a_long_chain_needs_no_recursion():
    chain = {f"p{i}": [f"p{i + 1}"] for i in range(5000)}
    chain["p5000"] = []
    graph = DependencyGraph(chain)
    assert graph.find_cycle() is None
    assert len(graph.all_dependencies("p0")) == 5000
    chain["p5000"] = ["p0"]
    assert len(DependencyGraph(chain).find_cycle() or []) == 5002
