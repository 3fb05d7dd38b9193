"""Grouping faces into suggested people, from a similarity graph (each
face's neighbours at or above the threshold), whichever engine built it.

1. DBSCAN on the graph: a face with at least `min_faces - 1` neighbours is
   a core face; core faces that are neighbours share a cluster, and every
   other face joins the cluster of a core neighbour (its most similar
   one). Faces near no core face are noise: no suggestion.
2. Complete linkage inside each cluster: DBSCAN chains faces (A like B,
   B like C, A unlike C), so each cluster is split by agglomerating its
   faces, most similar first, only ever merging two groups when every
   pair across them is in the graph. So no group holds two faces that
   the threshold tells apart.
"""

import hashlib
import heapq


def suggest_groups(face_ids: list[str], graph: dict[str, dict[str, float]], min_faces: int) -> list[list[str]]:
    """Groups of at least `min_faces` faces, largest first (ties: by their first id)."""
    graph = symmetric(graph)
    groups = [
        group
        for cluster in dbscan(face_ids, graph, min_faces)
        for group in complete_linkage(cluster, graph)
        if len(group) >= min_faces
    ]
    return sorted((sorted(group) for group in groups), key=lambda group: (-len(group), group[0]))


def dbscan(face_ids: list[str], graph: dict[str, dict[str, float]], min_faces: int) -> list[list[str]]:
    present = set(face_ids)
    neighbours = {i: {j: s for j, s in graph.get(i, {}).items() if j in present and j != i} for i in face_ids}
    core = {i for i in face_ids if len(neighbours[i]) + 1 >= min_faces}
    cluster_of: dict[str, int] = {}
    clusters: list[list[str]] = []
    for start in sorted(core):
        if start in cluster_of:
            continue
        cluster_of[start] = len(clusters)
        members, todo = [start], [start]
        while todo:
            face = todo.pop()
            for other in neighbours[face]:
                if other in core and other not in cluster_of:
                    cluster_of[other] = cluster_of[start]
                    members.append(other)
                    todo.append(other)
        clusters.append(members)
    for face in sorted(set(face_ids) - core):
        near = [(s, other) for other, s in neighbours[face].items() if other in core]
        if near:
            clusters[cluster_of[max(near)[1]]].append(face)
    return clusters


def complete_linkage(faces: list[str], graph: dict[str, dict[str, float]]) -> list[list[str]]:
    """Agglomerate `faces`: merge the two groups whose least similar pair
    is the most similar, while every pair across them is in the graph."""
    groups: dict[int, list[str]] = {n: [face] for n, face in enumerate(sorted(faces))}
    index = {group[0]: n for n, group in groups.items()}
    # links[a][b]: the lowest similarity between groups a and b, kept only
    # while every pair across them is in the graph.
    links: dict[int, dict[int, float]] = {n: {} for n in groups}
    for face, n in index.items():
        for other, score in graph.get(face, {}).items():
            m = index.get(other)
            if m is not None and m != n:
                links[n][m] = score
    heap = [(-score, a, b) for a, targets in links.items() for b, score in targets.items() if a < b]
    heapq.heapify(heap)
    next_id = len(groups)
    while heap:
        score, a, b = heapq.heappop(heap)
        if a not in groups or b not in groups or links[a].get(b) != -score:
            continue  # one of them was merged since
        merged = next_id
        next_id += 1
        groups[merged] = groups.pop(a) + groups.pop(b)
        shared = set(links[a]) & set(links[b]) - {a, b}
        links[merged] = {c: min(links[a][c], links[b][c]) for c in shared}
        for c in set(links.pop(a)) | set(links.pop(b)):
            if c in links:
                links[c].pop(a, None)
                links[c].pop(b, None)
        for c, link in links[merged].items():
            links[c][merged] = link
            heapq.heappush(heap, (-link, c, merged))
    return list(groups.values())


def medoid(group: list[str], graph: dict[str, dict[str, float]]) -> str:
    """The face most like the others of its group (ties: the first id)."""
    return max(sorted(group), key=lambda face: sum(graph.get(face, {}).get(other, 0.0) for other in group))


def suggestion_id(group: list[str]) -> str:
    """The same faces always make the same id."""
    return "s-" + hashlib.sha256("\n".join(sorted(group)).encode()).hexdigest()[:16]


def symmetric(graph: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """The graph with every edge both ways (the lower score where the two
    directions differ; one direction is enough: a search may stop at its
    most similar faces)."""
    both: dict[str, dict[str, float]] = {face: {} for face in graph}
    for a, targets in graph.items():
        for b, score in targets.items():
            if a == b:
                continue
            known = both.setdefault(b, {}).get(a)
            low = score if known is None else min(known, score)
            both[a][b] = both[b][a] = low
    return both
