"""The task graph: structural checks, topological order, levels and the critical path. Pure, O(V+E).

Tasks are indexed 0..n-1 in document order; edges go from a dependency to its dependent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from stepspot.errors import Problem

# (task index in the document, task id, [(index in depends_on, dependency id)])
RawNode = tuple[int, str, list[tuple[int, str]]]


def graph_problems(nodes: Sequence[RawNode]) -> list[Problem]:
    """Duplicate ids, unknown and self dependencies, and every cycle, as located sentences."""
    problems: list[Problem] = []
    first_index: dict[str, int] = {}
    for index, task_id, _ in nodes:
        if task_id in first_index:
            problems.append(
                Problem(
                    f"$.tasks[{index}].id",
                    f"duplicate task id {task_id!r} (also used by $.tasks[{first_index[task_id]}]): "
                    "give every task its own id",
                )
            )
        else:
            first_index[task_id] = index

    edges: dict[str, list[str]] = {task_id: [] for task_id in first_index}  # dependency -> dependents
    for index, task_id, deps in nodes:
        seen: set[str] = set()
        for dep_index, dep in deps:
            where = f"$.tasks[{index}].depends_on[{dep_index}] (task {task_id!r})"
            if dep == task_id:
                problems.append(Problem(where, f"task {task_id!r} depends on itself: remove {dep!r} from depends_on"))
            elif dep not in first_index:
                problems.append(
                    Problem(where, f"unknown dependency {dep!r}: no task has this id; fix the id or add the task")
                )
            elif dep in seen:
                problems.append(Problem(where, f"{dep!r} is listed twice in depends_on: list it once"))
            elif first_index[task_id] == index:  # edges of the first task with a duplicated id only
                edges[dep].append(task_id)
            seen.add(dep)

    for cycle in find_cycles(_unsortable_part(edges)):
        text = " -> ".join([*cycle, cycle[0]])
        problems.append(
            Problem(
                f"$.tasks[{first_index[cycle[0]]}].depends_on (task {cycle[0]!r})",
                f"dependency cycle {text}: a workflow must be acyclic; remove one of these dependencies",
            )
        )
    return problems


def _unsortable_part(edges: dict[str, list[str]]) -> dict[str, list[str]]:
    """The nodes Kahn's algorithm cannot order (cycles and what hangs below them); usually empty."""
    indegree = dict.fromkeys(edges, 0)
    for children in edges.values():
        for child in children:
            indegree[child] += 1
    ready = [node for node, count in indegree.items() if count == 0]
    while ready:
        for child in edges[ready.pop()]:
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    left = {node for node, count in indegree.items() if count > 0}
    return {node: [c for c in edges[node] if c in left] for node in left}


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
    """Order, levels and critical path of a valid DAG."""

    order: list[str]
    levels: list[list[str]]
    level_of: dict[str, int]
    dependents: dict[str, list[str]]
    critical_path: list[str]
    critical_path_seconds: float
    finish_at: dict[str, float]  # earliest finish with unlimited capacity


def analyse(depends_on: dict[str, list[str]], runtime: dict[str, float]) -> Topology:
    """Kahn's algorithm; levels and longest (runtime-weighted) path in the same pass. The graph must be
    valid (``graph_problems`` empty). Works on integer indices: list lookups are several times cheaper
    than dict lookups by id, which matters at 100k tasks."""
    ids = list(depends_on)
    index = {task_id: i for i, task_id in enumerate(ids)}
    n = len(ids)
    children: list[list[int]] = [[] for _ in range(n)]
    remaining = [0] * n
    for i, deps in enumerate(depends_on.values()):
        remaining[i] = len(deps)
        for dep in deps:
            children[index[dep]].append(i)
    weight = [runtime[task_id] for task_id in ids]

    ready = [i for i in range(n) if remaining[i] == 0]
    level = [0] * n
    start = [0.0] * n
    finish = [0.0] * n
    best_dep = [-1] * n
    head = 0
    while head < len(ready):
        i = ready[head]
        head += 1
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
                ready.append(child)
    if len(ready) != n:
        raise ValueError("the task graph has a cycle; run graph_problems() first")

    levels: list[list[str]] = [[] for _ in range(max(level) + 1)] if n else []
    for i in ready:
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
        order=[ids[i] for i in ready],
        levels=levels,
        level_of=dict(zip(ids, level, strict=True)),
        dependents={task_id: [ids[c] for c in children[i]] for i, task_id in enumerate(ids)},
        critical_path=path,
        critical_path_seconds=critical_seconds,
        finish_at=dict(zip(ids, finish, strict=True)),
    )
