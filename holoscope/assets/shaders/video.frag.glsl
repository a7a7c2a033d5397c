#version 430
// One plain video picture, converted to RGB, placed in `rect`; the rest of the viewport gets
// the background colour (letterbox / pillarbox bars).
//
// Sampling is a manual bilinear filter over texelFetch (clamp to edge) in each plane's own
// texel grid, done in float32: no dependence on the driver's sub-texel filter precision
// (8 bits on many GPUs). At 1:1 size every luma / 4:4:4 / RGB sample lands exactly on a texel
// centre (weight 1.0 on one texel), so 4:4:4 and RGB frames convert pixel-exactly.
//
// Coordinates: `p` is the position in the picture in luma pixels, top-left origin, pixel i
// spanning [i, i+1) (centre i + 0.5). A plane's texel j sits at continuous coordinate j.
//   luma / RGB:   c = p - 0.5
//   chroma:       c = p * chroma_map.xy + chroma_map.zw, set by the renderer per format:
//     4:4:4   c = p - 0.5
//     4:2:0   MPEG-2 / H.264 default siting ("left", chroma_loc_type 0): chroma column j is
//             co-sited with luma column 2j (centre 2j + 0.5), chroma row j lies midway between
//             luma rows 2j and 2j + 1 (centre 2j + 1), so c = (p.x / 2 - 0.25, p.y / 2 - 0.5).
//
// Sample depth: 8-bit planes are R8 textures (texel = code / 255); 9..16-bit planes are
// normalised R16 textures (texel = code / 65535) and `sample_scale` = 65535 / (2^n - 1) turns
// them into code / (2^n - 1), the true n-bit value; at 8 bits it is 1.0 (exact no-op).
//
// Colour: rgb = yuv_matrix * (Y, U, V) + yuv_offset on the code / (2^n - 1) values; the
// renderer folds the n-bit range expansion (limited 16-235 / 16-240 times 2^(n-8), or full
// 0..2^n-1 with chroma centred at 2^(n-1)) and the BT.601 / BT.709 / BT.2020 matrix into these
// two uniforms. Output is clamped to [0, 1].

layout(binding = 0) uniform sampler2D plane0;  // Y (R8 or R16), or RGB (RGB8) for rgb24
layout(binding = 1) uniform sampler2D plane1;  // U (R8 or R16)
layout(binding = 2) uniform sampler2D plane2;  // V (R8 or R16)

uniform int rgb_input;          // 1: plane0 holds RGB, no conversion
uniform float sample_scale;     // 65535 / (2^n - 1) for R16 planes, 1.0 for 8-bit planes
uniform ivec2 luma_size;        // picture width, height
uniform ivec2 chroma_size;      // chroma plane width, height
uniform vec4 chroma_map;        // chroma texel coordinate = p * xy + zw
uniform vec4 rect;              // picture rectangle in viewport pixels: x, y (top-left), w, h
uniform vec2 pic_scale;         // picture pixels per viewport pixel (exactly 1.0 at 1:1)
uniform float viewport_height;  // to turn gl_FragCoord (bottom-left origin) to top-left
uniform vec3 background;
uniform mat3 yuv_matrix;
uniform vec3 yuv_offset;

out vec4 frag_color;

vec4 bilinear(sampler2D tex, vec2 c, ivec2 size) {
    vec2 base = floor(c);
    vec2 w = c - base;
    ivec2 i0 = clamp(ivec2(base), ivec2(0), size - 1);
    ivec2 i1 = clamp(ivec2(base) + 1, ivec2(0), size - 1);
    vec4 a = texelFetch(tex, i0, 0);
    vec4 b = texelFetch(tex, ivec2(i1.x, i0.y), 0);
    vec4 d = texelFetch(tex, ivec2(i0.x, i1.y), 0);
    vec4 e = texelFetch(tex, i1, 0);
    return mix(mix(a, b, w.x), mix(d, e, w.x), w.y);
}

void main() {
    vec2 q = vec2(gl_FragCoord.x, viewport_height - gl_FragCoord.y);  // pixel centres at k + 0.5
    vec2 d = q - rect.xy;
    if (any(lessThan(d, vec2(0.0))) || any(greaterThanEqual(d, rect.zw))) {
        frag_color = vec4(background, 1.0);
        return;
    }
    vec2 p = d * pic_scale;
    vec3 rgb;
    if (rgb_input != 0) {
        rgb = bilinear(plane0, p - 0.5, luma_size).rgb;
    } else {
        vec2 c = p * chroma_map.xy + chroma_map.zw;
        vec3 yuv = vec3(bilinear(plane0, p - 0.5, luma_size).r,
                        bilinear(plane1, c, chroma_size).r,
                        bilinear(plane2, c, chroma_size).r);
        rgb = yuv_matrix * (yuv * sample_scale) + yuv_offset;
    }
    frag_color = vec4(clamp(rgb, 0.0, 1.0), 1.0);
}
