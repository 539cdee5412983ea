"""The control shell: the Serve deployment that carries out control_plane decisions (admin actions,
migrations). Imports control_plane, deployments.common, config - never ingress or serving."""
