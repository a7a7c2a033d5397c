#version 430
// Per-splat projection, run once per splat per view (not once per quad corner): EWA splatting
// with the rules of the INRIA reference rasterizer (diff-gaussian-rasterization forward.cu) in
// a CV camera frame (x right, y down, z forward), plus SH colour for the view direction.
// Compute runs on every shader core (on NVIDIA datacentre parts only a few cores run vertex
// shaders), and the vertex stage is left with a few loads.

layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer Centers { vec4 centers[]; };  // xyz, opacity
layout(std430, binding = 1) readonly buffer Covs { vec4 covs[]; };        // 2 per splat: xx xy xz yy | yz zz - -
layout(std430, binding = 2) readonly buffer Sh { float sh[]; };           // sh_stride*3 per splat, coefficient-major
layout(std430, binding = 4) writeonly buffer Projected { vec4 projected[]; };  // 3 per splat, see main()

uniform uint count;
uniform mat4 view;          // world -> OpenGL camera
uniform vec3 cam_pos;       // world-space camera centre
uniform vec2 viewport;      // width, height in pixels
uniform float focal;        // pixels
uniform vec2 tan_half_fov;  // x, y
uniform float near;         // splats at view depth <= near are culled
uniform int sh_stride;      // SH coefficients per channel stored per splat
uniform int sh_degree;      // SH degree to evaluate (<= stored)
uniform float scale2;       // splat-scale modifier, squared (scales the covariance)

const float C0 = 0.28209479177387814;
const float C1 = 0.4886025119029199;
const float C2[5] = float[](1.0925484305920792, -1.0925484305920792, 0.31539156525252005,
                            -1.0925484305920792, 0.5462742152960396);
const float C3[7] = float[](-0.5900435899266435, 2.890611442640554, -0.4570457994644658,
                            0.3731763325901154, -0.4570457994644658, 1.445305721320277,
                            -0.5900435899266435);

vec3 coeff(uint base, int k) {
    uint o = base + uint(k * 3);
    return vec3(sh[o], sh[o + 1u], sh[o + 2u]);
}

vec3 eval_sh(uint idx, vec3 d) {
    uint base = idx * uint(sh_stride * 3);
    vec3 result = C0 * coeff(base, 0);
    if (sh_degree > 0) {
        float x = d.x, y = d.y, z = d.z;
        result += -C1 * y * coeff(base, 1) + C1 * z * coeff(base, 2) - C1 * x * coeff(base, 3);
        if (sh_degree > 1) {
            float xx = x * x, yy = y * y, zz = z * z, xy = x * y, yz = y * z, xz = x * z;
            result += C2[0] * xy * coeff(base, 4) + C2[1] * yz * coeff(base, 5)
                    + C2[2] * (2.0 * zz - xx - yy) * coeff(base, 6)
                    + C2[3] * xz * coeff(base, 7) + C2[4] * (xx - yy) * coeff(base, 8);
            if (sh_degree > 2) {
                result += C3[0] * y * (3.0 * xx - yy) * coeff(base, 9)
                        + C3[1] * xy * z * coeff(base, 10)
                        + C3[2] * y * (4.0 * zz - xx - yy) * coeff(base, 11)
                        + C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy) * coeff(base, 12)
                        + C3[4] * x * (4.0 * zz - xx - yy) * coeff(base, 13)
                        + C3[5] * z * (xx - yy) * coeff(base, 14)
                        + C3[6] * x * (xx - 3.0 * yy) * coeff(base, 15);
            }
        }
    }
    return max(result + 0.5, vec3(0.0));
}

void cull(uint idx) {
    projected[3u * idx] = vec4(0.0);  // zero extent: the vertex stage emits nothing
}

void main() {
    uint idx = gl_GlobalInvocationID.x;
    if (idx >= count) return;
    vec4 c = centers[idx];
    vec4 p = view * vec4(c.xyz, 1.0);
    vec3 t = vec3(p.x, -p.y, -p.z);  // CV camera frame
    if (t.z <= near) { cull(idx); return; }

    // EWA splatting: Jacobian of the perspective map at the (frustum-clamped) mean.
    vec2 lim = 1.3 * tan_half_fov;
    vec2 txy = clamp(t.xy / t.z, -lim, lim) * t.z;
    float z2 = t.z * t.z;
    mat3 J = mat3(focal / t.z, 0.0, 0.0,
                  0.0, focal / t.z, 0.0,
                  -focal * txy.x / z2, -focal * txy.y / z2, 0.0);
    mat3 R = mat3(view);
    vec3 flip = vec3(1.0, -1.0, -1.0);
    mat3 W = mat3(R[0] * flip, R[1] * flip, R[2] * flip);  // world -> CV rotation
    vec4 c0 = covs[2u * idx], c1 = covs[2u * idx + 1u];
    mat3 V = mat3(c0.x, c0.y, c0.z,
                  c0.y, c0.w, c1.x,
                  c0.z, c1.x, c1.y) * scale2;
    mat3 T = J * W;
    mat3 cov = T * V * transpose(T);
    float a = cov[0][0] + 0.3, b = cov[0][1], cc = cov[1][1] + 0.3;  // low-pass dilation
    float det = a * cc - b * b;
    if (!(det > 0.0)) { cull(idx); return; }
    float mid = 0.5 * (a + cc);
    float lambda = mid + sqrt(max(0.1, mid * mid - det));
    float radius = ceil(3.0 * sqrt(lambda));

    // Fragments with alpha < 1/255 are discarded, i.e. all d with d^T conic d > 2 ln(255 o):
    // the quad only needs that ellipse's bounding box (never more than the 3-sigma square).
    // Same pixels as the reference, far fewer fragments for faint or elongated splats.
    if (!(c.w >= 1.0 / 255.0)) { cull(idx); return; }
    float k = sqrt(2.0 * log(255.0 * c.w));
    vec2 extent = min(vec2(radius), k * sqrt(vec2(a, cc)));

    vec2 center = focal * t.xy / t.z + 0.5 * viewport - 0.5;
    // Drop quads entirely off screen before they reach the rasterizer.
    if (center.x + extent.x < -0.5 || center.y + extent.y < -0.5 ||
        center.x - extent.x > viewport.x - 0.5 || center.y - extent.y > viewport.y - 0.5) { cull(idx); return; }

    projected[3u * idx] = vec4(center, extent);
    projected[3u * idx + 1u] = vec4(cc / det, -b / det, a / det, radius);
    projected[3u * idx + 2u] = vec4(eval_sh(idx, normalize(c.xyz - cam_pos)), c.w);
}
