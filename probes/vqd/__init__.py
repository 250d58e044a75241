"""Video-quality diagnosis (视频质量诊断) on decoded frames: blur, occlusion, frozen picture, too
dark / too bright, colour cast, noise, signal loss, moved camera, decoding errors.

- `probes/vqd/config.py`: thresholds and per-camera overrides (loads no OpenCV);
- `probes/vqd/measures.py`: one pure function per measure on NumPy arrays (OpenCV, NumPy);
- `probes/vqd/diagnose.py`: the measures together, thresholds and verdicts (`diagnose`);
- `probes/vqd/grab.py`: a burst of frames from a stream with ffmpeg, an image file read safely.

OpenCV is imported only by measures, diagnose and grab, which the frame check imports only
when `probes.rtsp_frame.vqd.enabled` (a daemon without it does not load OpenCV)."""
