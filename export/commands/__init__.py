"""`lewm export`, `lewm bench` and `lewm probe` (registered in lewm_cli). The probe command lives here, above
lewm/, because it chooses the backend (torch weights or the ONNX engine) and hands it to the probes."""
