// Fetch the greeting from the api service.
async function greet() {
  const res = await fetch("/api/hello");
  const body = await res.json();
  document.getElementById("greeting").textContent = body.message;
}

greet();
