//! A backend whose device can be made to fail while the host runs: the CPU backend, except
//! that, once switched, its forward passes return an error (a device that stopped
//! answering) or logits shifted off the reference (a device computing wrong answers).

use powhost_core::{Backend, ForwardPass, ModelParams, ModelWeights};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Device {
    Working = 0,
    Unresponsive = 1,
    WrongAnswers = 2,
}

/// Switches the device of every [`FailingBackend`] made from it.
#[derive(Clone, Default)]
pub struct DeviceSwitch(Arc<AtomicU8>);

impl DeviceSwitch {
    pub fn set(&self, device: Device) {
        self.0.store(device as u8, Ordering::SeqCst);
    }

    fn get(&self) -> u8 {
        self.0.load(Ordering::SeqCst)
    }

    /// The CPU backend behind this switch.
    pub fn backend(&self) -> Box<dyn Backend> {
        Box::new(FailingBackend {
            cpu: crate::backends::backend_by_name("cpu").expect("the CPU backend opens"),
            switch: self.clone(),
        })
    }
}

struct FailingBackend {
    cpu: Box<dyn Backend>,
    switch: DeviceSwitch,
}

impl Backend for FailingBackend {
    fn name(&self) -> &'static str {
        self.cpu.name()
    }

    fn device_description(&self) -> String {
        format!("{} (switchable, for tests)", self.cpu.device_description())
    }

    fn working_memory_bytes(&self, params: &ModelParams, batch: usize) -> u64 {
        self.cpu.working_memory_bytes(params, batch)
    }

    fn load(&self, weights: Arc<ModelWeights>) -> anyhow::Result<Box<dyn ForwardPass>> {
        Ok(Box::new(FailingForward {
            cpu: self.cpu.load(weights)?,
            switch: self.switch.clone(),
        }))
    }
}

struct FailingForward {
    cpu: Box<dyn ForwardPass>,
    switch: DeviceSwitch,
}

impl ForwardPass for FailingForward {
    fn last_position_logits(&self, inputs: &[half::f16], batch: usize) -> anyhow::Result<Vec<f32>> {
        match self.switch.get() {
            s if s == Device::Unresponsive as u8 => {
                anyhow::bail!("the device did not answer (switched off by the test)")
            }
            s if s == Device::WrongAnswers as u8 => {
                let logits = self.cpu.last_position_logits(inputs, batch)?;
                // Every other logit scaled: the distances move far past the budget.
                Ok(logits
                    .iter()
                    .enumerate()
                    .map(|(i, x)| if i % 2 == 0 { x * 3.0 } else { *x })
                    .collect())
            }
            _ => self.cpu.last_position_logits(inputs, batch),
        }
    }
}
