"""`zdg ui`: the identity workbench, a small server-rendered web app over the face store."""
