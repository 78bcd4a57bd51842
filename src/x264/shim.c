/*
 * The small C side of reeld's H.264 encoder element (src/x264/): it fills
 * libx264's parameter struct and calls the encoder, so that the Rust side never
 * mirrors x264_param_t, whose layout changes with every X264_BUILD.
 *
 * The parameters are applied in the order GStreamer's x264enc applies them
 * (preset and tune, then the option string, then the picture, then rate
 * control, then the profile), so that a fragment moved from x264enc to
 * reeldx264enc encodes the same stream.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <x264.h>

/* Keep in step with `RateControl` in ffi.rs. */
enum { REELD_RC_CRF = 0, REELD_RC_CQP = 1, REELD_RC_ABR = 2 };

/* Keep in step with `Config` in ffi.rs. */
struct reeld_x264_config {
    int32_t width, height;
    int32_t fps_num, fps_den;
    int32_t par_num, par_den;
    const char *preset;        /* NULL: x264's defaults */
    const char *tune;          /* NULL: none */
    const char *profile;       /* NULL: none */
    const char *option_string; /* NULL or "key=value:key=value" */
    int32_t rate_control;
    float quantizer;
    int32_t bitrate_kbps;
    int32_t vbv_buffer_ms;
    int32_t keyint_max; /* 0: ten seconds of frames */
    int32_t threads;    /* 0: x264 decides */
    /* VUI colour description, ISO/IEC 23091-2 code points. */
    int32_t colour_primaries, transfer, matrix, full_range, chroma_location;
};

/* Keep in step with `Output` in ffi.rs. */
struct reeld_x264_output {
    const uint8_t *data; /* valid until the next call on the encoder */
    int32_t size;
    int32_t keyframe;
    int64_t pts, dts;
};

/* Sized below ERROR_CAPACITY so that a message quoting x264's fits. */
#define LAST_ERROR_CAPACITY 192
#define ERROR_CAPACITY 256

struct reeld_x264 {
    x264_t *encoder;
    char last_error[LAST_ERROR_CAPACITY];
};

static void remember_error(void *private, int level, const char *format, va_list args)
{
    char *last_error = private;
    if (level > X264_LOG_WARNING)
        return;
    vsnprintf(last_error, LAST_ERROR_CAPACITY, format, args);
    /* x264's messages end in a newline. */
    size_t n = strlen(last_error);
    while (n > 0 && (last_error[n - 1] == '\n' || last_error[n - 1] == '\r'))
        last_error[--n] = 0;
}

static int apply_option_string(x264_param_t *param, const char *options, char *error)
{
    char *copy = strdup(options);
    if (!copy) {
        snprintf(error, ERROR_CAPACITY, "out of memory");
        return -1;
    }
    int failed = 0;
    char *save = NULL;
    for (char *pair = strtok_r(copy, ":", &save); pair; pair = strtok_r(NULL, ":", &save)) {
        char *value = strchr(pair, '=');
        if (value)
            *value++ = 0;
        int result = x264_param_parse(param, pair, value);
        if (result == X264_PARAM_BAD_NAME) {
            snprintf(error, ERROR_CAPACITY, "option-string: x264 has no option %s", pair);
            failed = 1;
            break;
        }
        if (result == X264_PARAM_BAD_VALUE) {
            snprintf(error, ERROR_CAPACITY, "option-string: bad value %s for x264 option %s",
                     value ? value : "(none)", pair);
            failed = 1;
            break;
        }
    }
    free(copy);
    return failed ? -1 : 0;
}

/* Returns NULL with `error` filled in when x264 refuses the configuration. */
struct reeld_x264 *reeld_x264_open(const struct reeld_x264_config *c, char *error)
{
    error[0] = 0;
    struct reeld_x264 *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(error, ERROR_CAPACITY, "out of memory");
        return NULL;
    }
    x264_param_t param;
    if (x264_param_default_preset(&param, c->preset, c->tune) < 0) {
        snprintf(error, ERROR_CAPACITY, "x264 has no speed-preset %s or tune %s",
                 c->preset ? c->preset : "(none)", c->tune ? c->tune : "(none)");
        free(e);
        return NULL;
    }
    param.pf_log = remember_error;
    param.p_log_private = e->last_error;
    param.i_log_level = X264_LOG_WARNING;
    /* Length-prefixed NAL units with SPS and PPS in codec_data: "avc". */
    param.b_annexb = 0;
    /* An access unit delimiter first, as x264enc's aud=true writes. */
    param.b_aud = 1;
    /* GStreamer's clock: nanoseconds. */
    param.i_timebase_num = 1;
    param.i_timebase_den = 1000000000;

    if (c->option_string && c->option_string[0] &&
        apply_option_string(&param, c->option_string, error) < 0) {
        free(e);
        return NULL;
    }
    param.i_threads = c->threads;

    param.i_csp = X264_CSP_I420;
    param.i_width = c->width;
    param.i_height = c->height;
    param.i_bitdepth = 8;
    if (c->fps_num > 0 && c->fps_den > 0) {
        param.b_vfr_input = 0;
        param.i_fps_num = c->fps_num;
        param.i_fps_den = c->fps_den;
        param.i_keyint_max = c->keyint_max ? c->keyint_max : 10 * c->fps_num / c->fps_den;
    } else {
        param.b_vfr_input = 1;
        if (c->keyint_max)
            param.i_keyint_max = c->keyint_max;
    }
    if (c->par_num > 0 && c->par_den > 0) {
        param.vui.i_sar_width = c->par_num;
        param.vui.i_sar_height = c->par_den;
    }
    if (c->width == 720 && c->height == 576 && c->fps_num == 25 && c->fps_den == 1)
        param.vui.i_vidformat = 1; /* PAL */
    else if (c->width == 720 && c->height == 480 && c->fps_den == 1001 &&
             (c->fps_num == 30000 || c->fps_num == 24000))
        param.vui.i_vidformat = 2; /* NTSC */
    else
        param.vui.i_vidformat = 5; /* unspecified */
    param.vui.i_colorprim = c->colour_primaries;
    param.vui.i_transfer = c->transfer;
    param.vui.i_colmatrix = c->matrix;
    param.vui.b_fullrange = c->full_range;
    param.vui.i_chroma_loc = c->chroma_location;
    param.b_interlaced = 0;
    param.analyse.b_psnr = 0;

    switch (c->rate_control) {
    case REELD_RC_CQP:
        param.rc.i_rc_method = X264_RC_CQP;
        param.rc.i_qp_constant = (int)c->quantizer;
        break;
    case REELD_RC_CRF:
        param.rc.i_rc_method = X264_RC_CRF;
        param.rc.f_rf_constant = c->quantizer;
        param.rc.i_vbv_max_bitrate = c->bitrate_kbps;
        param.rc.i_vbv_buffer_size = c->bitrate_kbps * c->vbv_buffer_ms / 1000;
        break;
    default:
        param.rc.i_rc_method = X264_RC_ABR;
        param.rc.i_bitrate = c->bitrate_kbps;
        param.rc.i_vbv_max_bitrate = c->bitrate_kbps;
        param.rc.i_vbv_buffer_size = c->bitrate_kbps * c->vbv_buffer_ms / 1000;
        break;
    }

    if (c->profile && x264_param_apply_profile(&param, c->profile) < 0) {
        snprintf(error, ERROR_CAPACITY, "x264 cannot encode profile %.32s: %s", c->profile,
                 e->last_error[0] ? e->last_error : "refused");
        free(e);
        return NULL;
    }

    errno = 0;
    e->encoder = x264_encoder_open(&param);
    if (!e->encoder) {
        if (errno == ENOMEM)
            snprintf(error, ERROR_CAPACITY, "x264 ran out of memory opening the encoder");
        else
            snprintf(error, ERROR_CAPACITY, "x264 refused the settings: %s",
                     e->last_error[0] ? e->last_error : "no reason given");
        free(e);
        return NULL;
    }
    return e;
}

/* Writes the AVCDecoderConfigurationRecord (ISO/IEC 14496-15) into `out`;
 * returns its length, or -1 if x264's headers are not one SPS and one PPS or
 * do not fit. */
int32_t reeld_x264_avcc(struct reeld_x264 *e, uint8_t *out, int32_t capacity)
{
    x264_nal_t *nal;
    int count;
    if (x264_encoder_headers(e->encoder, &nal, &count) < 0)
        return -1;
    const x264_nal_t *sps = NULL, *pps = NULL;
    for (int i = 0; i < count; i++) {
        if (nal[i].i_type == NAL_SPS && !sps)
            sps = &nal[i];
        else if (nal[i].i_type == NAL_PPS && !pps)
            pps = &nal[i];
    }
    /* Each payload starts with its 4-byte length, then the NAL header. */
    if (!sps || !pps || sps->i_payload < 8 || pps->i_payload < 5)
        return -1;
    int32_t sps_size = sps->i_payload - 4, pps_size = pps->i_payload - 4;
    int32_t size = 6 + 2 + sps_size + 1 + 2 + pps_size;
    if (size > capacity)
        return -1;
    const uint8_t *s = sps->p_payload + 4;
    int32_t at = 0;
    out[at++] = 1;    /* configurationVersion */
    out[at++] = s[1]; /* AVCProfileIndication */
    out[at++] = s[2]; /* profile_compatibility */
    out[at++] = s[3]; /* AVCLevelIndication */
    out[at++] = 0xfc | 3; /* lengthSizeMinusOne: 4-byte lengths */
    out[at++] = 0xe0 | 1; /* one SPS */
    out[at++] = (uint8_t)(sps_size >> 8);
    out[at++] = (uint8_t)sps_size;
    memcpy(out + at, s, sps_size);
    at += sps_size;
    out[at++] = 1; /* one PPS */
    out[at++] = (uint8_t)(pps_size >> 8);
    out[at++] = (uint8_t)pps_size;
    memcpy(out + at, pps->p_payload + 4, pps_size);
    at += pps_size;
    return at;
}

/* Encodes one I420 picture, or drains a delayed one when `planes` is NULL.
 * x264 copies the picture before it returns, so the caller may free it at
 * once. Returns the size of the access unit in `out` (0: none yet), or -1. */
int32_t reeld_x264_encode(struct reeld_x264 *e, const uint8_t *const *planes,
                          const int32_t *strides, int64_t pts, int32_t force_keyframe,
                          struct reeld_x264_output *out)
{
    x264_picture_t in, result;
    x264_nal_t *nal;
    int count;
    memset(out, 0, sizeof *out);
    e->last_error[0] = 0;
    int size;
    /* x264 reports a failed allocation on stderr only, not through its log
     * callback; the allocator's errno is how the caller learns of it. The
     * frames it allocates here are allocated on this thread. */
    errno = 0;
    if (planes) {
        x264_picture_init(&in);
        in.img.i_csp = X264_CSP_I420;
        in.img.i_plane = 3;
        for (int i = 0; i < 3; i++) {
            in.img.plane[i] = (uint8_t *)planes[i];
            in.img.i_stride[i] = strides[i];
        }
        in.i_pts = pts;
        in.i_type = force_keyframe ? X264_TYPE_IDR : X264_TYPE_AUTO;
        size = x264_encoder_encode(e->encoder, &nal, &count, &in, &result);
    } else {
        size = x264_encoder_encode(e->encoder, &nal, &count, NULL, &result);
    }
    if (size < 0) {
        if (errno == ENOMEM)
            snprintf(e->last_error, LAST_ERROR_CAPACITY, "out of memory");
        return -1;
    }
    if (size == 0 || count == 0)
        return 0;
    /* x264 lays out one frame's NAL units back to back. */
    out->data = nal[0].p_payload;
    out->size = size;
    out->keyframe = result.b_keyframe;
    out->pts = result.i_pts;
    out->dts = result.i_dts;
    return size;
}

int32_t reeld_x264_delayed_frames(struct reeld_x264 *e)
{
    return x264_encoder_delayed_frames(e->encoder);
}

int32_t reeld_x264_maximum_delayed_frames(struct reeld_x264 *e)
{
    return x264_encoder_maximum_delayed_frames(e->encoder);
}

const char *reeld_x264_last_error(struct reeld_x264 *e)
{
    return e->last_error;
}

void reeld_x264_close(struct reeld_x264 *e)
{
    if (!e)
        return;
    if (e->encoder)
        x264_encoder_close(e->encoder);
    free(e);
}
