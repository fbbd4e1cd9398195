//! grantwarden-portal-fn: what the portal Lambda adds to `grantwarden_portal`:
//! the credential of a ticket read from the secret the revoke function
//! delivered it into (`grantwarden/access/<ticket>`), to show its requester once.
#![deny(missing_docs)]

use grantwarden_aws::AccessSecrets;
use grantwarden_core::ticket::Ticket;
use grantwarden_portal::{IssuedCredential, Revealer};

/// The revoke function's delivered credentials, in Secrets Manager.
pub struct SecretRevealer(pub AccessSecrets);

impl Revealer for SecretRevealer {
    fn reveal<'a>(
        &'a self,
        ticket: &'a Ticket,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Option<IssuedCredential>, String>> + Send + 'a>>
    {
        Box::pin(async move {
            let secret = self.0.read(ticket.id()).await.map_err(|e| e.to_string())?;
            Ok(secret.map(|s| IssuedCredential {
                role: s.username,
                password: s.password,
                host: s.host,
                port: s.port,
                dbname: s.dbname,
                sql: Vec::new(),
            }))
        })
    }
}
