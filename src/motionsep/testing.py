"""Testing support: tiny random-weight pipelines of every family, built from the real diffusers classes.

Used by the tests and as a stand-in base model for smoke runs; nothing is downloaded. The
tokenizer is a real ``CLIPTokenizer`` over a byte-level vocabulary built in memory.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .word_tokenizer import build_tokenizer

__all__ = [
    "build_tokenizer",
    "save_tiny_pipeline",
    "tiny_animatediff_pipeline",
    "tiny_cogvideox_pipeline",
    "tiny_modelscope_pipeline",
    "tiny_wan_i2v_pipeline",
    "tiny_wan_pipeline",
]

TEXT_DIM = 32
# Shared by both families' UNets: three resolutions, two of them with attention, two layers each.
UNET_SHAPE = dict(
    sample_size=8,
    in_channels=4,
    out_channels=4,
    block_out_channels=(16, 32, 32),
    layers_per_block=2,
    norm_num_groups=8,
    cross_attention_dim=TEXT_DIM,
    attention_head_dim=4,
)


def tiny_text_encoder(vocab_size: int, seed: int = 0):
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    config = CLIPTextConfig(
        hidden_size=TEXT_DIM,
        intermediate_size=64,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=vocab_size,
        max_position_embeddings=77,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    return CLIPTextModel(config).eval()


def tiny_vae(seed: int = 0):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        latent_channels=4,
        norm_num_groups=8,
        sample_size=16,
    )  # 2x spatial downsampling: 16x16 frames -> 8x8 latents


def tiny_scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False, set_alpha_to_one=False
    )


def tiny_modelscope_unet(seed: int = 0):
    """Three down blocks (two with attention) so 'deepest' and 'all' highway choices differ."""
    from diffusers import UNet3DConditionModel

    torch.manual_seed(seed)
    return UNet3DConditionModel(
        down_block_types=("CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"),
        **UNET_SHAPE,
    )


def tiny_modelscope_pipeline(seed: int = 0):
    from diffusers import TextToVideoSDPipeline

    tokenizer = build_tokenizer()
    return TextToVideoSDPipeline(
        vae=tiny_vae(seed),
        text_encoder=tiny_text_encoder(len(tokenizer), seed),
        tokenizer=tokenizer,
        unet=tiny_modelscope_unet(seed),
        scheduler=tiny_scheduler(),
    )


def tiny_animatediff_pipeline(seed: int = 0):
    from diffusers import AnimateDiffPipeline, MotionAdapter, UNet2DConditionModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        **UNET_SHAPE,
    )
    adapter = MotionAdapter(
        block_out_channels=(16, 32, 32),
        motion_layers_per_block=2,
        motion_norm_num_groups=8,
        motion_num_attention_heads=2,
        motion_max_seq_length=32,
    )
    tokenizer = build_tokenizer()
    return AnimateDiffPipeline(
        vae=tiny_vae(seed),
        text_encoder=tiny_text_encoder(len(tokenizer), seed),
        tokenizer=tokenizer,
        unet=unet,
        motion_adapter=adapter,
        scheduler=tiny_scheduler(),
    )


# Wan: 32x32 frames give 4x4 latents (the VAE's 8x), 2x2 tokens a frame (patch 2); 9 frames are 3 latent frames.
WAN_SIZE = 32
WAN_FRAMES = 9


def tiny_wan_pipeline(seed: int = 0):
    """A WanPipeline of diffusers' own tiny test shapes: patch (1, 2, 2), 2 heads of 12, 2 blocks, a tiny causal
    AutoencoderKLWan, a tiny UMT5 encoder (here over the in-memory word tokenizer) and flow matching."""
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    vae = AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    )
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=len(tokenizer),
            d_model=TEXT_DIM,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            pad_token_id=tokenizer.pad_token_id,
            decoder_start_token_id=0,
        )
    ).eval()
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=TEXT_DIM,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )
    return WanPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
    )


def tiny_wan22_ti2v_pipeline(seed: int = 0):
    """Wan 2.2 TI2V-5B's shape in diffusers' own tiny test sizes: the Wan 2.2 VAE (48 latent channels, 16x in space
    by a 2x2 patchify and residual down blocks, 4x in time), one transformer over 48 channels, and the pipeline's
    per-token timesteps (`expand_timesteps`), around the tiny Wan's text encoder."""
    from diffusers import AutoencoderKLWan, WanPipeline, WanTransformer3DModel

    wan = tiny_wan_pipeline(seed)
    torch.manual_seed(seed)
    vae = AutoencoderKLWan(
        base_dim=3,
        z_dim=48,
        in_channels=12,
        out_channels=12,
        is_residual=True,
        patch_size=2,
        latents_mean=[0.0] * 48,
        latents_std=[1.0] * 48,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        scale_factor_spatial=16,
        scale_factor_temporal=4,
        temperal_downsample=[False, True, True],
    )
    transformer = WanTransformer3DModel(**{**dict(wan.transformer.config), "in_channels": 48, "out_channels": 48})
    parts = {k: wan.components[k] for k in ("tokenizer", "text_encoder", "scheduler")}
    return WanPipeline(**parts, vae=vae, transformer=transformer, expand_timesteps=True)


def tiny_wan_i2v_pipeline(seed: int = 0, image_encoder: bool = True, experts: bool = False):
    """A WanImageToVideoPipeline of diffusers' own tiny test shapes: the tiny Wan's VAE and text encoder, a
    transformer over 36 channels (the 16 noisy ones, a 4-channel first-frame mask and the 16 of the encoded first
    frame). `image_encoder`: Wan 2.1 I2V's CLIP image encoder and the transformer's image cross-attention (a tiny
    CLIPVisionModel); else Wan 2.2 I2V's text-and-frame conditioning alone. `experts`: Wan 2.2 I2V A14B's two
    experts switched at its boundary 0.9."""
    from diffusers import WanImageToVideoPipeline, WanTransformer3DModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    wan = tiny_wan_pipeline(seed)
    shape = {**dict(wan.transformer.config), "in_channels": 36, "out_channels": 16}
    if image_encoder:
        shape |= {"image_dim": 4, "added_kv_proj_dim": 24}
    torch.manual_seed(seed)
    transformer = WanTransformer3DModel(**shape)
    transformer_2 = WanTransformer3DModel(**shape) if experts else None
    encoder = processor = None
    if image_encoder:
        encoder = CLIPVisionModel(
            CLIPVisionConfig(
                hidden_size=4,
                projection_dim=4,
                num_hidden_layers=2,
                num_attention_heads=2,
                image_size=32,
                intermediate_size=16,
                patch_size=1,
            )
        ).eval()
        processor = CLIPImageProcessor(crop_size=32, size=32)
    parts = {k: wan.components[k] for k in ("tokenizer", "text_encoder", "vae", "scheduler")}
    return WanImageToVideoPipeline(
        **parts,
        image_encoder=encoder,
        image_processor=processor,
        transformer=transformer,
        transformer_2=transformer_2,
        boundary_ratio=0.9 if experts else None,
    )


# CogVideoX: the same 32x32 frames and 9 frames (3 latent frames); patch 2 gives 2x2 tokens a frame, and the text
# is 16 tokens long (the published models: 226).
COGVIDEOX_TEXT_TOKENS = 16


def tiny_cogvideox_pipeline(seed: int = 0, rotary: bool = True):
    """A CogVideoXPipeline of diffusers' own tiny test shapes: 2 blocks of 2 heads of 16, a tiny
    AutoencoderKLCogVideoX (8x in space, 4x in time), a tiny T5 encoder over the in-memory word tokenizer, and
    CogVideoX-5B's v-prediction DDIM schedule; `rotary`: 3D RoPE as 5B (else sinusoidal positions as 2B)."""
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXPipeline, CogVideoXTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    vae = AutoencoderKLCogVideoX(
        down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
    )
    text_encoder = T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer),
            d_model=TEXT_DIM,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            pad_token_id=tokenizer.pad_token_id,
        )
    ).eval()
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=4,
        out_channels=4,
        time_embed_dim=4,
        text_embed_dim=TEXT_DIM,
        num_layers=2,
        sample_width=WAN_SIZE // 8,
        sample_height=WAN_SIZE // 8,
        sample_frames=WAN_FRAMES,
        patch_size=2,
        max_text_seq_length=COGVIDEOX_TEXT_TOKENS,
        use_rotary_positional_embeddings=rotary,
    )
    return CogVideoXPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        transformer=transformer,
        scheduler=CogVideoXDDIMScheduler(
            beta_schedule="scaled_linear",
            clip_sample=False,
            prediction_type="v_prediction",
            rescale_betas_zero_snr=True,
            timestep_spacing="trailing",
        ),
    )


TINY_PIPELINES = {
    "modelscope": tiny_modelscope_pipeline,
    "animatediff": tiny_animatediff_pipeline,
    "wan": tiny_wan_pipeline,
    "wan-i2v": tiny_wan_i2v_pipeline,
    "cogvideox": tiny_cogvideox_pipeline,
}


def save_tiny_pipeline(folder: str | Path, family: str = "modelscope", seed: int = 0) -> Path:
    """Write a tiny random pipeline of `family` as an ordinary diffusers folder."""
    pipe = TINY_PIPELINES[family](seed)
    pipe.save_pretrained(str(folder))
    return Path(folder)
