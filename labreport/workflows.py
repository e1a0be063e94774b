"""Each command's work as a plain function that tests call directly."""

from __future__ import annotations

from labreport import build, engine, tools
from labreport.config import LabConfig

LAB_IMAGE_ROLE = "lab-image"


def build_all(config: LabConfig) -> str:
    """Host builds plus the scratch image (kept, tagged :latest); a short summary to print."""
    out_dir = tools.state_dir() / "artifacts" / config.name
    lines = []
    artifacts = {name: build.go_build(config, name, out_dir) for name in config.builds}
    for artifact in artifacts.values():
        lines.append(f"{artifact.build:<8} {artifact.size_bytes:>12,} B  {artifact.path}")
    client = engine.connect()
    try:
        tag = f"{config.image.repository}:latest"
        image_id, _command = build.build_image(
            client, config, tag, {build.LABEL_ROLE: LAB_IMAGE_ROLE}
        )
        inner = build.file_from_image(client, image_id, config.image.binary_path, {})
        image = client.images.get(image_id)
        reference = artifacts[config.image.same_as_build]
        same = build.sha256_bytes(inner) == reference.sha256
        lines.append(
            f"{'image':<8} {int(image.attrs['Size']):>12,} B  {tag} ({image_id[:19]}), "
            f"uncompressed, as the engine reports it"
        )
        lines.append(
            f"{'in image':<8} {len(inner):>12,} B  {config.image.binary_path} "
            f"({'identical to' if same else 'DIFFERENT from'} the host {reference.build} build)"
        )
    finally:
        client.close()
    return "\n".join(lines)
