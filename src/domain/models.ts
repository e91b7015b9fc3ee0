/** The torchvision models the PyTorch runner can build (python/rfuav_torch/models.py). */
export const SUPPORTED_MODELS = [
  'resnet18',
  'resnet34',
  'resnet50',
  'resnet101',
  'resnet152',
  'vit_b_16',
  'vit_b_32',
  'vit_l_16',
  'vit_l_32',
  'swin_v2_t',
  'swin_v2_s',
  'swin_v2_b',
  'mobilenet_v3_large',
  'mobilenet_v3_small',
] as const;

export type ModelName = (typeof SUPPORTED_MODELS)[number];

export function isSupportedModel(name: unknown): name is ModelName {
  return typeof name === 'string' && (SUPPORTED_MODELS as readonly string[]).includes(name);
}
