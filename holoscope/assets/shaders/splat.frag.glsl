#version 430
// Per-pixel Gaussian evaluation with the reference rules: alpha = min(0.99, o * exp(power)),
// fragments under 1/255 discarded. Output is premultiplied for back-to-front "over" blending.

flat in vec3 v_color;
flat in float v_opacity;
flat in vec3 v_conic;
flat in vec2 v_center;
flat in float v_radius;

uniform vec2 viewport;

out vec4 frag;

void main() {
    // CV pixel coordinates of this fragment (row 0 at the top, centres at integers).
    vec2 pix = vec2(gl_FragCoord.x - 0.5, viewport.y - 0.5 - gl_FragCoord.y);
    vec2 d = pix - v_center;
    if (abs(d.x) > v_radius || abs(d.y) > v_radius) discard;
    float power = -0.5 * (v_conic.x * d.x * d.x + v_conic.z * d.y * d.y) - v_conic.y * d.x * d.y;
    if (power > 0.0) discard;
    float alpha = min(0.99, v_opacity * exp(power));
    if (alpha < 1.0 / 255.0) discard;
    frag = vec4(v_color * alpha, alpha);
}
