"""Post-processing: what turns a model's raw outputs into the task's answer (detections, a label
map), and the options by which deployments do it differently.

A Pipeline's `postprocess` field names options in order; each option is a small function that
changes the model's reference post-processing configuration (`configure`). The engine runs the
model once per distinct input and applies every column's post-processing to the same raw
outputs (Task.finish), so a post-processing variant costs no forward pass.
"""
