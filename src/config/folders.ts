/** ComfyUI's model folders (under `<ComfyUI>/models/`) and the aliases older templates and users use. */
export const MODEL_FOLDERS = [
  'checkpoints',
  'loras',
  'vae',
  'text_encoders',
  'diffusion_models',
  'clip_vision',
  'style_models',
  'embeddings',
  'controlnet',
  't2i_adapter',
  'upscale_models',
  'hypernetworks',
  'vae_approx',
  'gligen',
  'photomaker',
  'diffusers',
  'configs',
  'classifiers',
  'model_patches',
  'audio_encoders',
  'latent_upscale_models',
  'animatediff_models',
  'unet_gguf',
] as const;

export type ModelFolder = (typeof MODEL_FOLDERS)[number];

const ALIASES: Readonly<Record<string, ModelFolder>> = {
  checkpoint: 'checkpoints',
  ckpt: 'checkpoints',
  lora: 'loras',
  locon: 'loras',
  lycoris: 'loras',
  clip: 'text_encoders',
  text_encoder: 'text_encoders',
  textencoder: 'text_encoders',
  unet: 'diffusion_models',
  diffusion_model: 'diffusion_models',
  esrgan: 'upscale_models',
  upscale: 'upscale_models',
  upscaler: 'upscale_models',
  upscalers: 'upscale_models',
  embedding: 'embeddings',
  textual_inversion: 'embeddings',
  controlnets: 'controlnet',
  control_net: 'controlnet',
  vaes: 'vae',
  hypernetwork: 'hypernetworks',
  clipvision: 'clip_vision',
  motion_module: 'animatediff_models',
  motion_modules: 'animatediff_models',
};

/** Maps a folder name or alias ("lora", "Clip", "unet") to ComfyUI's folder, or undefined. */
export function normalizeFolder(key: string): ModelFolder | undefined {
  const k = key.trim().toLowerCase().replace(/-/g, '_');
  if ((MODEL_FOLDERS as readonly string[]).includes(k)) return k as ModelFolder;
  return ALIASES[k];
}
