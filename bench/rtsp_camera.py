"""An RTSP camera for the soak and the tests: GStreamer's RTSP server (Debian's gir1.2-gst-rtsp-server-1.0) serving
an H.264 MPEG-TS file once at its real rate on rtsp://127.0.0.1:PORT/camera. Run by Debian's python3 (python3-gi):

    /usr/bin/python3 bench/rtsp_camera.py PORT FILE.ts
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402 - after require_version

Gst.init(None)
port, path = sys.argv[1], sys.argv[2]
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(f'( filesrc location="{path}" ! tsdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )')
factory.set_shared(True)
server.get_mount_points().add_factory("/camera", factory)
if server.attach(None) == 0:
    sys.exit(f"cannot listen on 127.0.0.1:{port}")
print("serving", flush=True)
GLib.MainLoop().run()
