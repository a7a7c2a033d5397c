#version 430
// One instanced quad per visible Gaussian, in back-to-front order. All projection work was
// done once per splat by splat_project.comp.glsl; this stage only places the quad corners.

layout(std430, binding = 3) readonly buffer Order { uint order[]; };           // back-to-front
layout(std430, binding = 4) readonly buffer Projected { vec4 projected[]; };   // 3 per splat

uniform vec2 viewport;  // width, height in pixels

flat out vec3 v_color;
flat out float v_opacity;
flat out vec3 v_conic;    // a, b, c of the inverse 2D covariance
flat out vec2 v_center;   // mean in CV pixel coordinates (pixel centres at integers)
flat out float v_radius;  // half extent of the reference 3-sigma square, pixels

void main() {
    uint idx = order[gl_InstanceID];
    vec4 p0 = projected[3u * idx];
    if (p0.z <= 0.0) {  // culled by the projection pass
        gl_Position = vec4(0.0, 0.0, 2.0, 1.0);  // outside the clip volume: no fragments
        return;
    }
    vec4 p1 = projected[3u * idx + 1u];
    vec4 p2 = projected[3u * idx + 2u];
    v_center = p0.xy;
    v_conic = p1.xyz;
    v_radius = p1.w;
    v_color = p2.rgb;
    v_opacity = p2.a;

    vec2 corner = vec2(float(gl_VertexID & 1), float(gl_VertexID >> 1)) * 2.0 - 1.0;
    vec2 pix = p0.xy + corner * (p0.zw + 0.5);
    gl_Position = vec4((pix.x + 0.5) / viewport.x * 2.0 - 1.0,
                       1.0 - (pix.y + 0.5) / viewport.y * 2.0, 0.0, 1.0);
}
