//! `serve`'s keys: the signer key and the API key, from their flags or variables.

use crate::cli::ServeArgs;
use crate::serve::{Access, ApiKey, SignerKey};

/// Who may call the server. An empty value is unset, as the reference reads SIGNER_PUBKEY.
pub fn from_args(args: &ServeArgs) -> Result<Access, String> {
    let given = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
    let signer = given(&args.signer_pubkey)
        .map(|key| {
            SignerKey::from_base64(&key).map_err(|why| {
                format!("the signer key (--signer-pubkey or SIGNER_PUBKEY) cannot be used: {why}")
            })
        })
        .transpose()?;
    let api_key = given(&args.api_key)
        .map(|key| match key.trim() {
            "" => Err("the API key (--api-key or POWHOST_API_KEY) is only blanks".to_string()),
            trimmed if trimmed != key => Err(
                "the API key (--api-key or POWHOST_API_KEY) starts or ends with blanks, which no Authorization header can carry".to_string(),
            ),
            _ => Ok(ApiKey::new(&key)),
        })
        .transpose()?;
    Ok(Access { signer, api_key })
}
