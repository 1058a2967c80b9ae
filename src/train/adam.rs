//! Adam over named parameters with its moments as named tensors (so a checkpoint saves and
//! restores them exactly), as `torch.optim.Adam` with its defaults. Gradients come from
//! `run_backward` (no zeroing pass, no add into old `.grad` tensors); on the CPU the update is
//! one fused, parallel pass over each parameter (the tensor version is eight memory-bound
//! passes), on a GPU tensor ops with a scratch buffer per parameter (no temporaries).
//!
//! An L2 term `c/2 |w|^2` on a parameter ([`Adam::l2`]) is added to its gradient inside the
//! update (`g + c w`, in the same pass): the same arithmetic as the term in the loss, without
//! computing the penalty, differentiating it and adding its gradient (several passes over the
//! weights). On several processes it is added once, after the gradients are summed.

use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

/// Adam (Kingma & Ba), as `torch.optim.Adam` with its defaults, over named parameters, with
/// its moments kept as named tensors so a checkpoint can save and restore them exactly.
pub struct Adam {
    params: Vec<(String, Tensor)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// A buffer per parameter for the tensor path's intermediates (GPUs), allocated at its
    /// first use, so a step makes no parameter-sized temporaries. The CPU path needs none: it
    /// is one fused pass over each parameter's memory.
    scratch: Vec<Option<Tensor>>,
    pub t: i64,
    pub lr: f64,
    /// Each parameter's learning rate as a multiple of `lr` (1 unless [`Adam::scale_lr`]
    /// changed it; 0: the parameter is not updated).
    scales: Vec<f64>,
    /// Each parameter's L2 coefficient c: its gradient is `g + c w` (0: none).
    l2: Vec<f64>,
    /// Training on several processes: the gradients are summed over them before the update.
    pub sync: Option<crate::train::GradSync>,
}

pub const BETA1: f64 = 0.9;
pub const BETA2: f64 = 0.999;
pub const EPS: f64 = 1e-8;

impl Adam {
    pub fn new(params: Vec<(String, Tensor)>, lr: f64) -> Result<Self> {
        let zeros = |p: &Tensor| p.f_zeros_like();
        let m = params.iter().map(|(_, p)| zeros(p)).collect::<std::result::Result<Vec<_>, _>>()?;
        let v = params.iter().map(|(_, p)| zeros(p)).collect::<std::result::Result<Vec<_>, _>>()?;
        let scratch = params.iter().map(|_| None).collect();
        let scales = vec![1.0; params.len()];
        let l2 = vec![0.0; params.len()];
        Ok(Adam { params, m, v, scratch, t: 0, lr, scales, l2, sync: None })
    }

    /// The parameter named `name` steps with `scale * lr` (0: frozen, neither it nor its
    /// moments move). Returns whether such a parameter is optimised.
    pub fn scale_lr(&mut self, name: &str, scale: f64) -> bool {
        match self.params.iter().position(|(n, _)| n == name).and_then(|k| self.scales.get_mut(k)) {
            Some(s) => {
                *s = scale;
                true
            }
            None => false,
        }
    }

    /// Adds `coef / 2 * |w|^2` to the loss minimised, for the parameter `w` (this very tensor:
    /// its storage is compared): its gradient `coef * w` is added in the update. Returns
    /// whether `w` is one of the parameters optimised.
    pub fn l2(&mut self, w: &Tensor, coef: f64) -> bool {
        let at = self.params.iter().position(|(_, p)| p.data_ptr() == w.data_ptr() && p.size() == w.size());
        match at.and_then(|k| self.l2.get_mut(k)) {
            Some(c) => {
                *c = coef;
                true
            }
            None => false,
        }
    }

    /// Parameters optimised.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Minimise `loss`: its gradients with respect to the parameters, computed without
    /// accumulating into `.grad` (so no zeroing pass and no add into the old gradient: the
    /// fresh gradient buffers are used as they come), then the Adam update.
    pub fn minimise(&mut self, loss: &Tensor) -> Result<()> {
        let params: Vec<&Tensor> = self.params.iter().map(|(_, p)| p).collect();
        let grads = Tensor::f_run_backward(&[loss], &params, false, false)?;
        self.step(&grads)
    }

    /// The Adam update with `grads[i]` the gradient of parameter i (undefined: no update).
    pub fn step(&mut self, grads: &[Tensor]) -> Result<()> {
        if grads.len() != self.params.len() {
            return Err(Error::state(format!("Adam: {} gradients for {} parameters", grads.len(), self.params.len())));
        }
        let summed;
        let grads = match &self.sync {
            Some(sync) => {
                let mut g: Vec<Tensor> = grads.iter().map(|g| g.shallow_clone()).collect();
                sync.reduce_dense(&self.params.iter().map(|(_, p)| p).collect::<Vec<_>>(), &mut g)?;
                summed = g;
                &summed[..]
            }
            None => grads,
        };
        self.t = self.t.saturating_add(1);
        let (bc1, bc2) = (1.0 - BETA1.powi(self.t as i32), 1.0 - BETA2.powi(self.t as i32));
        let _guard = tch::no_grad_guard();
        let rows = self.params.iter().zip(&mut self.m).zip(&mut self.v).zip(&mut self.scratch).zip(grads).zip(self.scales.iter().zip(&self.l2));
        for ((((((_, p), m), v), tmp), g), (&scale, &l2)) in rows {
            if !g.defined() {
                continue;
            }
            let lr = self.lr * scale;
            if lr == 0.0 {
                continue; // frozen
            }
            let k = Step { lr, bc1, bc2, l2 };
            if !crate::tensors::gpu_path(p.device()) && fused_cpu_step(p, m, v, g, k)? {
                continue;
            }
            let tmp = match tmp {
                Some(t) => t,
                None => tmp.insert(p.f_zeros_like()?),
            };
            tensor_step(p, m, v, tmp, g, k)?;
        }
        Ok(())
    }

    /// The moments and step count as named tensors ("adam.m.<param>", "adam.v.<param>", "adam.t").
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("adam.t".to_string(), Tensor::from_slice(&[self.t]))];
        for (((name, _), m), v) in self.params.iter().zip(&self.m).zip(&self.v) {
            out.push((format!("adam.m.{name}"), m.shallow_clone()));
            out.push((format!("adam.v.{name}"), v.shallow_clone()));
        }
        out
    }

    pub fn restore(&mut self, state: &std::collections::HashMap<String, Tensor>) -> Result<()> {
        let get = |k: &str| state.get(k).ok_or_else(|| Error::state(format!("checkpoint has no '{k}'")));
        self.t = get("adam.t")?.f_int64_value(&[0])?;
        let _guard = tch::no_grad_guard();
        for (((name, _), m), v) in self.params.iter().zip(&mut self.m).zip(&mut self.v) {
            m.f_copy_(get(&format!("adam.m.{name}"))?)?;
            v.f_copy_(get(&format!("adam.v.{name}"))?)?;
        }
        Ok(())
    }
}

/// One parameter's step: its learning rate, the bias corrections of the step count and its L2
/// coefficient.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    pub lr: f64,
    pub bc1: f64,
    pub bc2: f64,
    pub l2: f64,
}

/// Adam's update of one parameter in tensor ops (any device), `tmp` a buffer like `p`. As
/// torch.optim.Adam: g <- g + l2 p; m <- lerp(m, g, 1 - b1); v <- b2 v + (1 - b2) g^2;
/// p <- p - lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps), the last line folded into one addcdiv
/// with denominator sqrt(v) * c1 + c2. With an L2 term `g + l2 p` is formed in `tmp` (the
/// caller's gradient is left as it is).
pub fn tensor_step(p: &Tensor, m: &mut Tensor, v: &mut Tensor, tmp: &mut Tensor, g: &Tensor, k: Step) -> Result<()> {
    let Step { lr, bc1, bc2, l2 } = k;
    let g = if l2 != 0.0 {
        let _ = p.f_mul_scalar_out(tmp, l2)?.f_add_(g)?;
        tmp.shallow_clone()
    } else {
        g.shallow_clone()
    };
    let _ = m.f_lerp_(&g, 1.0 - BETA1)?;
    let _ = g.f_mul_out(tmp, &g)?; // tmp <- g * g (elementwise: tmp may be g itself)
    let _ = v.f_mul_scalar_(BETA2)?.f_add_(&tmp.f_mul_scalar_(1.0 - BETA2)?)?;
    let c1 = -bc1 / (lr * bc2.sqrt());
    let c2 = -bc1 * EPS / lr;
    let _ = v.f_sqrt_out(tmp)?;
    let _ = tmp.f_mul_scalar_(c1)?.f_add_scalar_(c2)?;
    let _ = p.shallow_clone().f_addcdiv_(m, tmp)?;
    Ok(())
}

/// Adam's update of one CPU parameter as a single pass over its memory (the tensor version
/// is eight passes over parameters of up to tens of MB, memory-bound on a CPU), in parallel
/// chunks on the caller's rayon pool. False when a tensor is not a contiguous float32 one
/// (the caller then takes the tensor path).
fn fused_cpu_step(p: &Tensor, m: &Tensor, v: &Tensor, g: &Tensor, step: Step) -> Result<bool> {
    use rayon::prelude::*;
    let g = g.f_contiguous()?;
    let n = p.numel();
    let all_f32 = [p, m, v, &g].iter().all(|t| t.kind() == Kind::Float && t.is_contiguous() && t.numel() == n && t.device() == Device::Cpu);
    if !all_f32 {
        return Ok(false);
    }
    use crate::tensors::cpu_f32_ptr;
    // SAFETY: four contiguous float32 CPU tensors of n elements (checked above and by
    // cpu_f32_ptr); p, m and v are the optimiser's own and nothing else touches them during the
    // step; g is read only.
    let (w, m, v, g) = unsafe {
        (
            std::slice::from_raw_parts_mut(cpu_f32_ptr(p, "Adam")?, n),
            std::slice::from_raw_parts_mut(cpu_f32_ptr(m, "Adam")?, n),
            std::slice::from_raw_parts_mut(cpu_f32_ptr(v, "Adam")?, n),
            std::slice::from_raw_parts(cpu_f32_ptr(&g, "Adam")? as *const f32, n),
        )
    };
    let k = AdamConsts::new(step.lr, step.bc1, step.bc2, step.l2);
    #[cfg(target_arch = "x86_64")]
    let avx2 = std::arch::is_x86_feature_detected!("avx2");
    const CHUNK: usize = 1 << 16;
    w.par_chunks_mut(CHUNK).zip(m.par_chunks_mut(CHUNK)).zip(v.par_chunks_mut(CHUNK)).zip(g.par_chunks(CHUNK)).for_each(|(((w, m), v), g)| {
        #[cfg(target_arch = "x86_64")]
        if avx2 {
            // SAFETY: the CPU has AVX2 (checked above).
            unsafe { adam_avx2(w, m, v, g, k) };
            return;
        }
        adam_elements(w, m, v, g, k)
    });
    Ok(true)
}

#[derive(Clone, Copy)]
struct AdamConsts {
    b1: f32,
    b2: f32,
    eps: f32,
    step: f32,
    root_bc2: f32,
    l2: f32,
}

impl AdamConsts {
    fn new(lr: f64, bc1: f64, bc2: f64, l2: f64) -> Self {
        AdamConsts { b1: BETA1 as f32, b2: BETA2 as f32, eps: EPS as f32, step: (lr / bc1) as f32, root_bc2: bc2.sqrt() as f32, l2: l2 as f32 }
    }
}

/// The update of [`Adam`] on these elements alone, the same arithmetic and bits as its fused
/// pass (`bc1`, `bc2`: the bias corrections of the step). The row-sparse optimiser's
/// `EpsAt::Corrected` form runs it on each row a batch touches.
pub(crate) fn update_slices(w: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], lr: f64, bc1: f64, bc2: f64) {
    let k = AdamConsts::new(lr, bc1, bc2, 0.0);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked).
        unsafe { adam_avx2(w, m, v, g, k) };
        return;
    }
    adam_elements(w, m, v, g, k)
}

/// The update of each element. Zipped iterators: no bounds checks, so the loop vectorises; each
/// element's operations are the same IEEE ones at any vector width (no fused multiply-adds),
/// so the AVX2 copy gives the same bits, twice as many at a time (the divisions and square
/// roots are most of the time). Without an L2 term (`l2` 0) `g + 0 w` is `g` (up to the sign
/// of a zero, which the update does not see).
#[inline(always)]
fn adam_elements(w: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], k: AdamConsts) {
    for (((w, m), v), &g) in w.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
        let g = g + k.l2 * *w;
        *m += (g - *m) * (1.0 - k.b1);
        *v = *v * k.b2 + g * g * (1.0 - k.b2);
        *w -= k.step * *m / (v.sqrt() / k.root_bc2 + k.eps);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn adam_avx2(w: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], k: AdamConsts) {
    adam_elements(w, m, v, g, k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::{self, OptimizerConfig};

    /// `scale_lr`: a parameter scaled by 0 stays put, one scaled by 0.5 takes half the
    /// first step (Adam's first step is lr * sign(g), whatever the gradient's size).
    #[test]
    fn scale_lr_scales_one_parameters_steps() {
        let start = [0.3f32, 0.1, -0.2];
        let vs = nn::VarStore::new(Device::Cpu);
        let p: Vec<Tensor> = ["a", "b", "c"].iter().map(|n| vs.root().var_copy(n, &Tensor::from_slice(&start))).collect();
        let named = ["a", "b", "c"].iter().zip(&p).map(|(n, t)| (n.to_string(), t.shallow_clone())).collect();
        let mut adam = Adam::new(named, 0.1).unwrap();
        assert!(adam.scale_lr("b", 0.5) && adam.scale_lr("c", 0.0) && !adam.scale_lr("d", 0.5));
        let loss = p.iter().map(|t| (t - 1.0).square().sum(Kind::Float)).reduce(|a, b| a + b).unwrap();
        adam.minimise(&loss).unwrap();
        let moved: Vec<f64> = p.iter().map(|t| (t.detach() - Tensor::from_slice(&start)).abs().max().double_value(&[])).collect();
        assert!((moved[0] - 0.1).abs() < 1e-6 && (moved[1] - 0.05).abs() < 1e-6 && moved[2] == 0.0, "{moved:?}");
    }

    /// Our Adam (whose state can be saved) takes the steps libtorch's Adam takes.
    #[test]
    fn adam_matches_libtorch() {
        let target = Tensor::from_slice(&[1.0f32, -2.0, 0.5, 3.0]);
        // 0: ours (the fused CPU pass), 1: libtorch's, 2: ours in tensor ops (the GPU path).
        let run = |how: u8| {
            let vs = nn::VarStore::new(Device::Cpu);
            let w = vs.root().var_copy("w", &Tensor::from_slice(&[0.3f32, 0.1, -0.2, 0.0]));
            let mut mine = Adam::new(vec![("w".into(), w.shallow_clone())], 0.05).unwrap();
            let mut theirs = nn::Adam::default().build(&vs, 0.05).unwrap();
            let (mut m, mut v, mut tmp) = (w.zeros_like(), w.zeros_like(), w.zeros_like());
            for t in 1..=25 {
                let loss = (&w - &target).square().sum(Kind::Float) + w.abs().sum(Kind::Float);
                match how {
                    0 => mine.minimise(&loss).unwrap(),
                    1 => {
                        theirs.zero_grad();
                        loss.backward();
                        theirs.step();
                    }
                    _ => {
                        let g = Tensor::run_backward(&[&loss], &[&w], false, false).pop().unwrap();
                        let (bc1, bc2) = (1.0 - BETA1.powi(t), 1.0 - BETA2.powi(t));
                        tch::no_grad(|| tensor_step(&w, &mut m, &mut v, &mut tmp, &g, Step { lr: 0.05, bc1, bc2, l2: 0.0 })).unwrap();
                    }
                }
            }
            w.detach()
        };
        let (a, b, c) = (run(0), run(1), run(2));
        for other in [&b, &c] {
            let err = (&a - other).abs().max().double_value(&[]);
            assert!(err < 1e-5, "{a} vs {other}");
        }
        assert!(!a.equal(&Tensor::from_slice(&[0.3f32, 0.1, -0.2, 0.0])));
    }

    /// An L2 term given to the optimiser takes the steps of the same term in the loss, on the
    /// fused CPU pass and in tensor ops (the GPU path); only the parameter named gets it.
    #[test]
    fn l2_in_the_update_equals_l2_in_the_loss() {
        let target = Tensor::from_slice(&[1.0f32, -2.0, 0.5, 3.0]);
        let start = [0.3f32, 0.1, -0.2, 0.0];
        let c = 0.7;
        // 0: the term in the loss; 1: Adam::l2, fused CPU pass; 2: Adam::l2, tensor ops.
        let run = |how: u8| {
            let vs = nn::VarStore::new(Device::Cpu);
            let w = vs.root().var_copy("w", &Tensor::from_slice(&start));
            let u = vs.root().var_copy("u", &Tensor::from_slice(&start));
            let mut adam = Adam::new(vec![("w".into(), w.shallow_clone()), ("u".into(), u.shallow_clone())], 0.05).unwrap();
            if how > 0 {
                assert!(adam.l2(&w, c));
                assert!(!adam.l2(&w.detach().copy(), c), "another tensor of the same values is not the parameter");
            }
            let (mut m, mut v, mut tmp) = (w.zeros_like(), w.zeros_like(), w.zeros_like());
            for t in 1..=25 {
                let mut loss = (&w - &target).square().sum(Kind::Float) + (&u - &target).square().sum(Kind::Float);
                if how == 0 {
                    loss = loss + w.square().sum(Kind::Float) * (c / 2.0);
                }
                if how == 2 {
                    // The tensor path on w alone, as a GPU would take it.
                    let g = Tensor::run_backward(&[&loss], &[&w], false, false).pop().unwrap();
                    let (bc1, bc2) = (1.0 - BETA1.powi(t), 1.0 - BETA2.powi(t));
                    tch::no_grad(|| tensor_step(&w, &mut m, &mut v, &mut tmp, &g, Step { lr: 0.05, bc1, bc2, l2: c })).unwrap();
                } else {
                    adam.minimise(&loss).unwrap();
                }
            }
            (w.detach(), u.detach())
        };
        let ((a, ua), (b, ub), (d, _)) = (run(0), run(1), run(2));
        for other in [&b, &d] {
            let err = (&a - other).abs().max().double_value(&[]);
            assert!(err < 1e-5, "{a} vs {other}");
        }
        assert!(ua.equal(&ub), "u has no L2 term");
        assert!((&a - &ua).abs().max().double_value(&[]) > 1e-3, "the term moves w");
    }

    /// The AVX2 copy of the element loop gives the scalar loop's bits.
    #[test]
    fn vector_update_matches_the_scalar_one() {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            let n = 1037;
            let g: Vec<f32> = (0..n).map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 1e-3).collect();
            let start = |s: f32| -> Vec<f32> { (0..n).map(|i| ((i * 31 % 97) as f32) * s).collect() };
            let k = AdamConsts { b1: 0.9, b2: 0.999, eps: 1e-8, step: 0.01, root_bc2: 0.3, l2: 0.02 };
            let (mut w1, mut m1, mut v1) = (start(0.01), start(0.001), start(1e-5));
            let (mut w2, mut m2, mut v2) = (w1.clone(), m1.clone(), v1.clone());
            for _ in 0..3 {
                adam_elements(&mut w1, &mut m1, &mut v1, &g, k);
                // SAFETY: AVX2 checked above.
                unsafe { adam_avx2(&mut w2, &mut m2, &mut v2, &g, k) };
            }
            assert_eq!((w1, m1, v1), (w2, m2, v2));
        }
    }

    #[test]
    fn adam_state_round_trips() {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[3], nn::Init::Const(1.0));
        let mut a = Adam::new(vec![("w".into(), w.shallow_clone())], 0.1).unwrap();
        a.minimise(&w.square().sum(Kind::Float)).unwrap();
        let state: std::collections::HashMap<String, Tensor> = a.state().into_iter().map(|(k, v)| (k, v.copy())).collect();
        let mut b = Adam::new(vec![("w".into(), w.shallow_clone())], 0.1).unwrap();
        b.restore(&state).unwrap();
        assert_eq!(b.t, 1);
        assert!(b.m[0].equal(&a.m[0]) && b.v[0].equal(&a.v[0]));
        assert!(b.restore(&Default::default()).unwrap_err().to_string().contains("adam.t"));
    }
}
