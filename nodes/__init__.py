"""Face nodes: video source, detector, embedder, sequencer, sinks, store writer and re-identification."""
