"""`zdg.Store`: the face store for notebooks and scripts (read, and search by photo), opened from a graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nodes.app.search import Match


class Store:
    """The store a graph's reid node uses (the embedded one, or $ZDG_DSN).

        store = zdg.Store()                        # graphs/video_reid.yaml's store (here, else the checkout's)
        for person in store.identities(): print(person.id, person.name, person.sequences)
        store.search(["ross1.jpg", "ross2.jpg"])   # nearest identities, as Match(cluster_id, name, distance, joins)
    """

    def __init__(self, graph: str | Path | None = None, overrides: list[str] | None = None) -> None:
        from nodes.app.service import main_graph, open_store, reid_settings
        from zdg.config import load_graph

        self.graph = load_graph(Path(graph) if graph else main_graph(), overrides or [])
        self.settings = reid_settings(self.graph)
        self.store = open_store(self.graph)
        self._models = None

    def identities(self) -> list:
        """Every identity: id, name, faces (size), sequences, sources, silhouette, first/last seen, source names."""
        return self.store.identities()

    def sequences(self, identity: int) -> list:
        """An identity's sequences: source, frames, times, faces, crop frames."""
        return self.store.sequences(identity)

    def crop(self, sequence_id: int, frame: int | None = None) -> np.ndarray | None:
        """A stored face crop (BGR) of a sequence."""
        import cv2

        png = self.store.crop(sequence_id, frame)
        return None if png is None else cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)

    def search(self, photos: list[str | Path | np.ndarray], top: int = 5) -> list[Match]:
        """The identities nearest to the faces of these photos (files or BGR arrays), taken as one person."""
        import cv2

        from nodes.app.search import photo_embeddings, search
        from nodes.app.service import load_models

        if self._models is None:
            self._models = load_models(self.graph)
        images = [(f"photo {i}", p) if isinstance(p, np.ndarray) else (str(p), cv2.imread(str(p))) for i, p in enumerate(photos)]
        unreadable = [label for label, image in images if image is None]
        if unreadable:
            raise FileNotFoundError(f"not an image: {', '.join(unreadable)}")
        embeddings, _ = photo_embeddings(images, *self._models)
        return search(self.store, embeddings, self.settings, top)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
