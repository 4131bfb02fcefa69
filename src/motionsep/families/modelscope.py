"""ModelScope T2V and ZeroScope: ``UNet3DConditionModel`` in ``TextToVideoSDPipeline``.

Temporal layers: ``transformer_in`` and every ``temp_attentions.*`` (``TransformerTemporalModel``), and the
temporal convolutions. Everything else is `Family`'s U-Net behaviour."""

from __future__ import annotations

from .base import Family, Pathway

_TEMPORAL_ATTENTION = r"(transformer_in|.*\.temp_attentions\.\d+)\.transformer_blocks\.\d+\.attn[12]"

MODELSCOPE = Family(
    name="modelscope",
    denoiser_class="UNet3DConditionModel",
    pipeline_class="TextToVideoSDPipeline",
    temporal_transformer_class="TransformerTemporalModel",
    attention_down_block="CrossAttnDownBlock3D",
    temporal_in_block="temp_attentions",
    pathways=(
        Pathway(
            "temporal attention",
            _TEMPORAL_ATTENTION,
            "zero",
            "attn1 and attn2 of every temporal transformer (transformer_in included)",
            adapted_by_tap=True,
        ),
        Pathway("temporal convolutions", r".*\.temp_convs\.\d+", "identity", "every TemporalConvLayer"),
        Pathway("transformer_in", r"transformer_in", "identity", "the temporal transformer after conv_in"),
    ),
    first_temporal_layer="transformer_in",
    temporal_layer_classes=("TemporalConvLayer", "TransformerTemporalModel"),
    text_encoder_parameters=340_387_840,  # OpenCLIP ViT-H/14's text tower, 23 layers (as SD 2.x)
    text_encoder_unscaled_parameters=50_675_712,
)
