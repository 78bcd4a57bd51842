// Sentences for the codes the API answers with.

const REASONS = {
  video_codec: (v) => `The video codec (${v}) is not H.264, so the video was re-encoded.`,
  audio_codec: (v) => `The audio codec (${v}) is not AAC, so the audio was re-encoded.`,
  video_gop_size: () => 'Key frames are too far apart for smooth seeking.',
  video_frame_rate: (v) => `The frame rate (${v}) is outside what players handle well.`,
  video_resolution: (v) => `The resolution (${v}) is larger than the asset allows.`,
  pixel_aspect_ratio: (v) => `The pixels are not square (${v}).`,
  video_edit_list: () => 'The video track has an edit list that moves or cuts its start.',
  audio_edit_list: () => 'The audio track has an edit list that moves or cuts its start.',
  unexpected_media_file_parameters: () => 'The file has parameters most players do not expect.',
  unsupported_pixel_format: (v) => `The pixel format (${v}) is not 8-bit 4:2:0.`,
  video_bitrate: (v) => `The video bitrate is ${v}.`,
};

/** `[[code, sentence]]` for an asset's `non_standard_input_reasons`. */
export function reasons(map) {
  return Object.entries(map ?? {}).map(([code, value]) => {
    const say = REASONS[code];
    return [code, say ? say(value) : `${code.replaceAll('_', ' ')}: ${value}`];
  });
}

/** The rendition resolutions an asset may be asked for. */
export const RESOLUTIONS = ['highest', 'audio-only', '2160p', '1440p', '1080p', '720p', '540p', '480p', '360p', '270p'];
