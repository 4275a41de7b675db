"""The task graph: structural checks, topological order, levels and the critical path. Pure, O(V+E).

Tasks are indexed 0..n-1 in document order; edges go from a dependency to its dependent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stepspot.errors import Problem

# (task index in the document, task id, its raw depends_on list: entries that are not strings are skipped,
# the field validation reports them)
RawNode = tuple[int, str, list[Any]]


class Graph:
    """A valid task graph on integer indices (task i is ``ids[i]``, in document order). Validation builds
    it once; planning reuses it. ``children`` (the edges the other way) and ``order`` (the order in which
    Kahn's algorithm, first in first out, visits the tasks) are computed when first asked for: validating
    alone needs neither."""

    __slots__ = ("_children", "_order", "ids", "parents")

    def __init__(
        self,
        ids: list[str],
        parents: list[list[int]],
        children: list[list[int]] | None = None,
        order: list[int] | None = None,
    ) -> None:
        self.ids = ids
        self.parents = parents  # each task's dependencies, as listed
        self._children = children
        self._order = order

    @property
    def children(self) -> list[list[int]]:
        """Each task's dependents, in document order."""
        if self._children is None:
            self._children = _children_of(self.parents)
        return self._children

    @property
    def indegree(self) -> list[int]:
        return list(map(len, self.parents))

    @property
    def order(self) -> list[int]:
        if self._order is None:
            self._order = _kahn_order(self.children, self.indegree)
        return self._order


def _children_of(parents: list[list[int]]) -> list[list[int]]:
    children: list[list[int]] = [[] for _ in parents]
    for node, node_parents in enumerate(parents):
        for parent in node_parents:
            children[parent].append(node)
    return children


def graph_problems(nodes: Sequence[RawNode]) -> list[Problem]:
    """Duplicate ids, unknown and self dependencies, and every cycle, as located sentences."""
    return check_graph(nodes)[1]


def check_graph(nodes: Sequence[RawNode]) -> tuple[Graph | None, list[Problem]]:
    """(the graph, []) when the nodes form a valid DAG, else (None, every problem as a located sentence):
    duplicate ids, unknown and self dependencies, and every cycle."""
    ids = [task_id for _, task_id, _ in nodes]
    position = dict(zip(ids, range(len(ids)), strict=True))  # id -> index of the node
    if len(position) == len(ids) and (graph := _valid_graph(nodes, ids, position)):
        return graph, []
    return None, _problems(nodes, position)


def _valid_graph(nodes: Sequence[RawNode], ids: list[str], position: dict[str, int]) -> Graph | None:
    """The graph of nodes with unique ids when nothing is wrong with it, else None (``_problems`` says
    what). The common case, at 100k tasks: integer indices, one list per task, and no topological sort
    when every dependency comes earlier in the document (no cycle then)."""
    parents_of: list[list[int]] = []
    add = parents_of.append
    lookup = position.get
    forward = True  # every edge from an earlier task to a later one
    for node, (_, _, deps) in enumerate(nodes):
        if not deps:
            add([])
            continue
        try:
            parents = list(map(lookup, deps))
        except TypeError:  # an unhashable entry (a list, an object)
            return None
        if None in parents or node in parents or (len(deps) > 1 and len(set(deps)) != len(deps)):
            return None
        add(parents)  # type: ignore[arg-type]
        if forward and max(parents) > node:  # type: ignore[type-var,operator]
            forward = False
    if forward:
        return Graph(ids, parents_of)
    graph = Graph(ids, parents_of)
    return graph if len(graph.order) == len(ids) else None


def _problems(nodes: Sequence[RawNode], position: dict[str, int]) -> list[Problem]:
    """Every problem of the graph (at least one): messages are built only when something is wrong."""
    problems: list[Problem] = []
    if len(position) != len(nodes):
        position = {}
        first_index: list[int] = []
        for index, task_id, _ in nodes:
            if task_id in position:
                problems.append(
                    Problem(
                        f"$.tasks[{index}].id",
                        f"duplicate task id {task_id!r} (also used by $.tasks[{first_index[position[task_id]]}]): "
                        "give every task its own id",
                    )
                )
            else:
                position[task_id] = len(first_index)
                first_index.append(index)
    else:
        first_index = [index for index, _, _ in nodes]  # node -> task index in the document

    children: list[list[int]] = [[] for _ in first_index]
    indegree = [0] * len(first_index)
    lookup = position.get
    for index, task_id, deps in nodes:
        if not deps:
            continue
        node = position[task_id]
        owner = first_index[node] == index  # edges of the first task with a duplicated id only
        # Fast path (every dependency a known other task, listed once): the lookups run in C.
        try:
            parents = list(map(lookup, deps))
        except TypeError:  # an unhashable entry (a list, an object): the field pass reports it
            parents = [None]
        if None not in parents and node not in parents and (len(deps) == 1 or len(set(deps)) == len(deps)):
            if owner:
                for parent in parents:
                    children[parent].append(node)  # type: ignore[index]
                indegree[node] = len(parents)
            continue
        for dep_index, dep in enumerate(deps):
            parent = position.get(dep) if type(dep) is str else None
            if parent is None or parent == node:
                if type(dep) is str:
                    problems.append(_dependency_problem(index, task_id, dep_index, dep))
            elif owner:
                children[parent].append(node)
                indegree[node] += 1
        if len(deps) > 1 and len(set(map(str, deps))) != len(deps):
            problems.extend(_repeated_dependencies(index, task_id, deps))

    order = _kahn_order(children, indegree)
    if len(order) < len(indegree):
        ordered = set(order)
        left = {n for n in range(len(indegree)) if n not in ordered}  # cycles and what hangs below them
        names = list(position)
        edges = {names[n]: [names[c] for c in children[n] if c in left] for n in left}
        for cycle in find_cycles(edges):
            text = " -> ".join([*cycle, cycle[0]])
            problems.append(
                Problem(
                    f"$.tasks[{first_index[position[cycle[0]]]}].depends_on (task {cycle[0]!r})",
                    f"dependency cycle {text}: a workflow must be acyclic; remove one of these dependencies",
                )
            )
    return problems


def _dependency_problem(index: int, task_id: str, dep_index: int, dep: str) -> Problem:
    where = f"$.tasks[{index}].depends_on[{dep_index}] (task {task_id!r})"
    if dep == task_id:
        return Problem(where, f"task {task_id!r} depends on itself: remove {dep!r} from depends_on")
    return Problem(where, f"unknown dependency {dep!r}: no task has this id; fix the id or add the task")


def _repeated_dependencies(index: int, task_id: str, deps: list[Any]) -> list[Problem]:
    seen: set[str] = set()
    problems = []
    for dep_index, dep in enumerate(deps):
        if type(dep) is str and dep in seen:
            where = f"$.tasks[{index}].depends_on[{dep_index}] (task {task_id!r})"
            problems.append(Problem(where, f"{dep!r} is listed twice in depends_on: list it once"))
        seen.add(str(dep))
    return problems


def _kahn_order(children: list[list[int]], indegree: list[int]) -> list[int]:
    """Kahn's algorithm, first in first out: the nodes in a topological order. Nodes on a cycle, and
    what hangs below one, are left out."""
    remaining = indegree[:]
    order = [node for node, count in enumerate(remaining) if count == 0]
    for node in order:  # the list grows while it is read: a queue without a head index
        for child in children[node]:
            remaining[child] -= 1
            if remaining[child] == 0:
                order.append(child)
    return order


def find_cycles(edges: dict[str, list[str]]) -> list[list[str]]:
    """One cycle per strongly connected component that has one (iterative Tarjan, O(V+E))."""
    index_of: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in edges:
        if root in index_of:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, child_pos = work.pop()
            if child_pos == 0:
                index_of[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            children = edges[node]
            if child_pos < len(children):
                work.append((node, child_pos + 1))
                child = children[child_pos]
                if child not in index_of:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index_of[child])
                continue
            if low[node] == index_of[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return [_cycle_in(component, edges) for component in components]


def _cycle_in(component: list[str], edges: dict[str, list[str]]) -> list[str]:
    """Walk inside a strongly connected component until a node repeats: that loop is a cycle."""
    members = set(component)
    start = min(component)  # deterministic output
    path: list[str] = []
    position: dict[str, int] = {}
    node = start
    while node not in position:
        position[node] = len(path)
        path.append(node)
        node = next(child for child in edges[node] if child in members)
    return path[position[node] :]


@dataclass(frozen=True)
class Topology:
    """Order, levels and critical path of a valid DAG. Per-task facts are lists indexed like ``ids``
    (the input order); the dict views are built on demand (large workflows use the lists)."""

    ids: list[str]
    order: list[str]
    order_indices: list[int]  # the order as positions in ids
    levels: list[list[str]]
    level: list[int]
    children: list[list[int]]
    critical_path: list[str]
    critical_path_seconds: float
    finish: list[float]  # earliest finish with unlimited capacity

    def dependents_of(self, i: int) -> list[str]:
        ids = self.ids
        return [ids[c] for c in self.children[i]]

    @property
    def level_of(self) -> dict[str, int]:
        return dict(zip(self.ids, self.level, strict=True))

    @property
    def dependents(self) -> dict[str, list[str]]:
        return {task_id: self.dependents_of(i) for i, task_id in enumerate(self.ids)}

    @property
    def finish_at(self) -> dict[str, float]:
        return dict(zip(self.ids, self.finish, strict=True))


def analyse(depends_on: dict[str, list[str]], runtime: dict[str, float]) -> Topology:
    """Kahn's algorithm; levels and longest (runtime-weighted) path in the same pass. The graph must be
    valid (``graph_problems`` empty)."""
    ids = list(depends_on)
    return analyse_lists(ids, list(depends_on.values()), list(map(runtime.__getitem__, ids)))


def analyse_lists(ids: list[str], depends_on: list[list[str]], weight: list[float]) -> Topology:
    """``analyse`` of tasks given as parallel lists (id, its dependencies, its runtime), as the planner
    holds them. Works on integer indices: list lookups are several times cheaper than dict lookups by id,
    which matters at 100k tasks."""
    position = dict(zip(ids, range(len(ids)), strict=True)).__getitem__
    return analyse_graph(Graph(ids, [list(map(position, deps)) for deps in depends_on]), weight)


def analyse_graph(graph: Graph, weight: list[float]) -> Topology:
    """Kahn's algorithm (``Graph.order``) on a valid graph (``check_graph``), with levels and the longest
    (runtime-weighted) path in the same pass; ``weight[i]`` is task i's runtime."""
    ids, children = graph.ids, graph.children
    n = len(ids)
    remaining = graph.indegree[:]
    order = [i for i in range(n) if remaining[i] == 0]
    level = [0] * n
    start = [0.0] * n
    finish = [0.0] * n
    best_dep = [-1] * n
    for i in order:  # the list grows while it is read: a queue without a head index
        done = start[i] + weight[i]
        finish[i] = done
        next_level = level[i] + 1
        for child in children[i]:
            if next_level > level[child]:
                level[child] = next_level
            if done >= start[child]:
                start[child] = done
                best_dep[child] = i
            remaining[child] -= 1
            if remaining[child] == 0:
                order.append(child)
    if len(order) != n:
        raise ValueError("the task graph has a cycle; run graph_problems() first")

    levels: list[list[str]] = [[] for _ in range(max(level) + 1)] if n else []
    for i in order:
        levels[level[i]].append(ids[i])
    path: list[str] = []
    if n:
        node = max(range(n), key=finish.__getitem__)
        critical_seconds = finish[node]
        while node != -1:
            path.append(ids[node])
            node = best_dep[node]
        path.reverse()
    else:
        critical_seconds = 0.0
    return Topology(
        ids=ids,
        order=list(map(ids.__getitem__, order)),
        order_indices=order,
        levels=levels,
        level=level,
        children=children,
        critical_path=path,
        critical_path_seconds=critical_seconds,
        finish=finish,
    )
